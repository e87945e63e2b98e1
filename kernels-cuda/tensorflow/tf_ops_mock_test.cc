// A mock of the TensorFlow C API subset (tf_c_api_min.h) that runs libkarat_tf_ops' registration,
// input validation and both kernels (CPU, and GPU under the CUDA CPU emulation) without
// TensorFlow. It checks OUR side of the contract as documented by TensorFlow's C API headers:
// op definitions, kernel registration, TF_GetInput ownership, TF_AllocateOutput/Temp, failure
// reporting. It cannot prove that a real libtensorflow 2.9 accepts the library.
//
//   make -C kernels-cuda tfmock && kernels-cuda/build/tf_ops_mock_test
// (g++ -std=c++20 -DKARAT_EMULATE -include emu/cuda_emu.h over src/karat_fourier.cu,
//  tensorflow/karat_tf_ops.cc and this file; no nvcc, no TensorFlow, no GPU.)
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tf_c_api_min.h"

struct TF_Status {
  TF_Code code = TF_OK;
  std::string msg;
};
struct TF_Tensor {
  std::vector<int64_t> dims;
  std::shared_ptr<std::vector<float>> data;
};
struct TF_OpDefinitionBuilder {
  std::string name;
  std::vector<std::string> inputs, outputs;
  bool shapeFn = false;
};
struct TF_KernelBuilder {
  std::string op, device;
  void (*compute)(void*, TF_OpKernelContext*);
};
struct TF_OpKernelContext {
  std::vector<TF_Tensor*> inputs;
  std::vector<TF_Tensor> outputs;
  TF_Status status;
  int temps = 0;
};

namespace {
std::map<std::string, TF_OpDefinitionBuilder>& ops() {
  static std::map<std::string, TF_OpDefinitionBuilder> m;
  return m;
}
std::map<std::string, TF_KernelBuilder>& kernels() {
  static std::map<std::string, TF_KernelBuilder> m;
  return m;
}
int liveHandles = 0;
}  // namespace

extern "C" {
TF_Status* TF_NewStatus(void) { return new TF_Status; }
void TF_DeleteStatus(TF_Status* s) { delete s; }
void TF_SetStatus(TF_Status* s, TF_Code c, const char* m) { s->code = c; s->msg = m; }
TF_Code TF_GetCode(const TF_Status* s) { return s->code; }
const char* TF_Message(const TF_Status* s) { return s->msg.c_str(); }
int TF_NumDims(const TF_Tensor* t) { return (int)t->dims.size(); }
int64_t TF_Dim(const TF_Tensor* t, int i) { return t->dims[i]; }
void* TF_TensorData(const TF_Tensor* t) { return t->data->data(); }
TF_DataType TF_TensorType(const TF_Tensor*) { return TF_FLOAT; }
void TF_DeleteTensor(TF_Tensor* t) { --liveHandles; delete t; }
TF_OpDefinitionBuilder* TF_NewOpDefinitionBuilder(const char* n) { auto* b = new TF_OpDefinitionBuilder; b->name = n; return b; }
void TF_OpDefinitionBuilderAddInput(TF_OpDefinitionBuilder* b, const char* s) { b->inputs.push_back(s); }
void TF_OpDefinitionBuilderAddOutput(TF_OpDefinitionBuilder* b, const char* s) { b->outputs.push_back(s); }
void TF_OpDefinitionBuilderSetShapeInferenceFunction(TF_OpDefinitionBuilder* b,
                                                     void (*)(TF_ShapeInferenceContext*, TF_Status*)) { b->shapeFn = true; }
void TF_RegisterOpDefinition(TF_OpDefinitionBuilder* b, TF_Status* s) {
  ops()[b->name] = *b;
  delete b;
  s->code = TF_OK;
}
void TF_ShapeInferenceContextSetUnknownShape(TF_ShapeInferenceContext*, TF_Status*) {}
TF_KernelBuilder* TF_NewKernelBuilder(const char* op, const char* dev, void* (*)(TF_OpKernelConstruction*),
                                      void (*compute)(void*, TF_OpKernelContext*), void (*)(void*)) {
  return new TF_KernelBuilder{op, dev, compute};
}
void TF_RegisterKernelBuilder(const char*, TF_KernelBuilder* b, TF_Status* s) {
  kernels()[b->op + "@" + b->device] = *b;
  delete b;
  s->code = TF_OK;
}
void TF_GetInput(TF_OpKernelContext* ctx, int i, TF_Tensor** t, TF_Status* s) {
  if (i < 0 || i >= (int)ctx->inputs.size()) { s->code = TF_INVALID_ARGUMENT; return; }
  *t = new TF_Tensor(*ctx->inputs[i]);
  ++liveHandles;
  s->code = TF_OK;
}
TF_Tensor* TF_AllocateOutput(TF_OpKernelContext* ctx, int index, TF_DataType, const int64_t* dims, int nd,
                             size_t len, TF_Status* s) {
  size_t n = 1;
  for (int i = 0; i < nd; ++i) n *= (size_t)dims[i];
  if (len != n * sizeof(float)) { s->code = TF_INVALID_ARGUMENT; s->msg = "len mismatch"; return nullptr; }
  if ((int)ctx->outputs.size() <= index) ctx->outputs.resize(index + 1);
  TF_Tensor& o = ctx->outputs[index];
  o.dims.assign(dims, dims + nd);
  o.data = std::make_shared<std::vector<float>>(n, NAN);
  ++liveHandles;
  s->code = TF_OK;
  return new TF_Tensor(o);
}
TF_Tensor* TF_AllocateTemp(TF_OpKernelContext* ctx, TF_DataType, const int64_t* dims, int nd,
                           TF_AllocatorAttributes* a, TF_Status* s) {
  if (a && a->struct_size == 0) { s->code = TF_INVALID_ARGUMENT; return nullptr; }
  size_t n = 1;
  for (int i = 0; i < nd; ++i) n *= (size_t)dims[i];
  ++ctx->temps;
  ++liveHandles;
  s->code = TF_OK;
  return new TF_Tensor{std::vector<int64_t>(dims, dims + nd), std::make_shared<std::vector<float>>(n, NAN)};
}
void TF_OpKernelContext_Failure(TF_OpKernelContext* ctx, TF_Status* s) { ctx->status = *s; }
}  // extern "C"

namespace {
int failures = 0;
void expect(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
  if (!ok) ++failures;
}

TF_Tensor tensor(std::vector<int64_t> dims, unsigned seed, float scale) {
  size_t n = 1;
  for (auto d : dims) n *= (size_t)d;
  auto data = std::make_shared<std::vector<float>>(n);
  for (size_t i = 0; i < n; ++i) {
    seed = seed * 1664525u + 1013904223u;
    (*data)[i] = ((seed >> 8) / 16777216.0f - 0.5f) * scale;
  }
  return TF_Tensor{dims, data};
}

std::string fmt(double x) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2e", x);
  return b;
}

double normErr(const std::vector<float>& got, const std::vector<double>& ref) {
  double e = 0, m = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    e = std::max(e, std::fabs(got[i] - ref[i]));
    m = std::max(m, std::fabs(ref[i]));
  }
  return m > 0 ? e / m : e;
}
}  // namespace

int main() {
  expect(ops().count("KaratFourierKArAt") && ops()["KaratFourierKArAt"].inputs.size() == 2 &&
         ops()["KaratFourierKArAt"].outputs.size() == 1, "op KaratFourierKArAt(scores, coeffs) -> hidden registered");
  expect(ops().count("KaratFourierKArAtGrad") && ops()["KaratFourierKArAtGrad"].inputs.size() == 3 &&
         ops()["KaratFourierKArAtGrad"].outputs.size() == 2, "op KaratFourierKArAtGrad(dy, scores, coeffs) -> 2 outputs");
  for (const char* k : {"KaratFourierKArAt@CPU", "KaratFourierKArAt@GPU", "KaratFourierKArAtGrad@CPU", "KaratFourierKArAtGrad@GPU"})
    expect(kernels().count(k) == 1, std::string("kernel ") + k + " registered");

  const int B = 2, H = 3, N = 19, R = 5, G = 3;
  TF_Tensor S = tensor({B, H, N, N}, 1, 6), C = tensor({H, 2, R, N, G}, 2, 0.4f), Y = tensor({B, H, N, R}, 3, 2);
  // float64 reference (direct cos/sin).
  std::vector<double> refH((size_t)B * H * N * R, 0), refS((size_t)B * H * N * N, 0), refC((size_t)H * 2 * R * N * G, 0);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h)
      for (int i = 0; i < N; ++i) {
        const size_t row = ((size_t)b * H + h) * N + i;
        for (int q = 0; q < N; ++q)
          for (int m = 1; m <= G; ++m) {
            const double s = (*S.data)[row * N + q], c = std::cos(m * s), sn = std::sin(m * s);
            for (int p = 0; p < R; ++p) {
              const size_t ai = ((((size_t)h * 2) * R + p) * N + q) * G + (m - 1);
              const size_t bi = ((((size_t)h * 2 + 1) * R + p) * N + q) * G + (m - 1);
              const double A = (*C.data)[ai], Bc = (*C.data)[bi], g = (*Y.data)[row * R + p];
              refH[row * R + p] += A * c + Bc * sn;
              refS[row * N + q] += g * m * (-A * sn + Bc * c);
              refC[ai] += g * c;
              refC[bi] += g * sn;
            }
          }
      }
  for (const char* dev : {"CPU", "GPU"}) {
    TF_OpKernelContext f{{&S, &C}, {}, {}, 0};
    kernels()[std::string("KaratFourierKArAt@") + dev].compute(nullptr, &f);
    expect(f.status.code == TF_OK && f.outputs.size() == 1 && f.outputs[0].dims == std::vector<int64_t>{B, H, N, R},
           std::string(dev) + " forward: status ok, output [B,h,N,r]");
    if (f.outputs.size() == 1) {
      const double e = normErr(*f.outputs[0].data, refH);
      expect(e < 1e-5, std::string(dev) + " forward matches float64 reference (" + fmt(e) + ")");
    }
    TF_OpKernelContext g{{&Y, &S, &C}, {}, {}, 0};
    kernels()[std::string("KaratFourierKArAtGrad@") + dev].compute(nullptr, &g);
    expect(g.status.code == TF_OK && g.outputs.size() == 2, std::string(dev) + " backward: status ok, 2 outputs");
    if (g.outputs.size() == 2) {
      const double es = normErr(*g.outputs[0].data, refS), ec = normErr(*g.outputs[1].data, refC);
      expect(es < 1e-5 && ec < 1e-5, std::string(dev) + " backward matches float64 reference (dS " + fmt(es) + ", dC " + fmt(ec) + ")");
    }
    expect(std::string(dev) == "CPU" ? g.temps == 0 : g.temps == 1, std::string(dev) + " backward workspace from TF_AllocateTemp");
  }
  // Validation: coeffs with the wrong token count -> failure naming the argument.
  TF_Tensor badC = tensor({H, 2, R, N + 1, G}, 4, 1);
  TF_OpKernelContext bad{{&S, &badC}, {}, {}, 0};
  kernels()["KaratFourierKArAt@GPU"].compute(nullptr, &bad);
  expect(bad.status.code == TF_INVALID_ARGUMENT && bad.status.msg.find("'coeffs'") != std::string::npos &&
         bad.outputs.empty(), "wrong coeffs shape -> INVALID_ARGUMENT naming 'coeffs': " + bad.status.msg);
  TF_Tensor bigG = tensor({H, 2, R, N, 9}, 5, 1);
  TF_OpKernelContext bad2{{&S, &bigG}, {}, {}, 0};
  kernels()["KaratFourierKArAt@CPU"].compute(nullptr, &bad2);
  expect(bad2.status.code == TF_INVALID_ARGUMENT && bad2.status.msg.find("G=9") != std::string::npos,
         "G = 9 -> INVALID_ARGUMENT: " + bad2.status.msg);
  expect(liveHandles == 0, "every TF_Tensor handle obtained was deleted (" + std::to_string(liveHandles) + " left)");
  std::printf("%d failure(s)\n", failures);
  return failures ? 1 : 0;
}
