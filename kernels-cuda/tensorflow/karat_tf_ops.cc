// libkarat_tf_ops.so: TensorFlow custom ops wrapping the fused Fourier-KArAt kernels, for the
// 'tensorflow' backend of @tensorflow/tfjs-node(-gpu). Written against TensorFlow's stable C
// kernel/op API (tensorflow/c/kernels.h, ops.h), which libtensorflow.so.2 exports, so it needs
// neither TensorFlow's C++ headers nor a matching compiler ABI.
//
// Ops (no attributes; r and G come from the coeffs shape):
//   KaratFourierKArAt(scores: float [B,h,N,N], coeffs: float [h,2,r,N,G]) -> hidden: float [B,h,N,r]
//   KaratFourierKArAtGrad(dy: float [B,h,N,r], scores, coeffs) -> dscores, dcoeffs
// Kernels: 'GPU' (the CUDA kernels of src/karat_fourier.cu, on TensorFlow's device buffers,
// zero copy) and 'CPU' (a plain C++ implementation with float64 accumulation), so the library
// also works with the CPU-only @tensorflow/tfjs-node.
//
// Stream ordering on GPU: the C API gives no access to TensorFlow's own CUDA stream for its
// built-in GPU device (TF_GetStream only serves pluggable devices), so the GPU kernels
// synchronise the device before launching (inputs produced by TensorFlow's stream are complete)
// and synchronise their own stream after (outputs complete before TensorFlow reads them). This
// is correct whatever stream flags TensorFlow uses, at the cost of two host synchronisations
// per op. Registration runs from a static initialiser when TF_LoadLibrary dlopens the library.
// KARAT_TF_CPU_ONLY (make -C kernels-cuda tfops-cpu): the CPU kernels alone, built with g++ only,
// for the CPU-only @tensorflow/tfjs-node on machines without nvcc.
#if !defined(KARAT_EMULATE) && !defined(KARAT_TF_CPU_ONLY)
#include <cuda_runtime_api.h>
#endif

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "../include/karat_cuda.h"
#include "tf_c_api_min.h"

namespace {

const char kFwdOp[] = "KaratFourierKArAt";
const char kGradOp[] = "KaratFourierKArAtGrad";

struct Inputs {
  TF_Tensor* t[3] = {nullptr, nullptr, nullptr};
  int n = 0;
  ~Inputs() {
    for (int i = 0; i < n; ++i)
      if (t[i]) TF_DeleteTensor(t[i]);
  }
};

bool fail(TF_OpKernelContext* ctx, TF_Status* st, TF_Code code, const char* msg) {
  TF_SetStatus(st, code, msg);
  TF_OpKernelContext_Failure(ctx, st);
  return false;
}

#ifdef KARAT_TF_CPU_ONLY
// karat_check_dims of src/karat_fourier.cu (compiled by nvcc) without the CUDA kernels' limits
// (G <= KARAT_MAX_GRID, h <= 65535): the CPU kernels take any G, as the op contract does.
const int kMaxGrid = 1 << 20;
int checkDims(const karat_dims* d) {
  if (d->batch < 1 || d->heads < 1 || d->tokens < 1 || d->rank < 1) return KARAT_ERR_INVALID_ARGUMENT;
  if (d->grid < 1 || d->grid > kMaxGrid) return KARAT_ERR_INVALID_ARGUMENT;
  const double elems = (double)d->batch * d->heads * (double)d->tokens * d->tokens;
  if (elems >= 4.0e18) return KARAT_ERR_INVALID_ARGUMENT;
  return KARAT_OK;
}
#else
const int kMaxGrid = KARAT_MAX_GRID;
int checkDims(const karat_dims* d) { return karat_check_dims(d); }
#endif

// Reads `count` inputs and checks the shapes of the op contract; fills dims.
bool readInputs(TF_OpKernelContext* ctx, TF_Status* st, bool grad, Inputs& in, karat_dims& d) {
  const char* op = grad ? kGradOp : kFwdOp;
  const int count = grad ? 3 : 2;
  for (int i = 0; i < count; ++i) {
    TF_GetInput(ctx, i, &in.t[i], st);
    if (TF_GetCode(st) != TF_OK) { TF_OpKernelContext_Failure(ctx, st); return false; }
    in.n = i + 1;
    if (TF_TensorType(in.t[i]) != TF_FLOAT) return fail(ctx, st, TF_INVALID_ARGUMENT, "inputs must be float32");
  }
  const TF_Tensor* S = in.t[grad ? 1 : 0];
  const TF_Tensor* C = in.t[grad ? 2 : 1];
  char msg[512];
  if (TF_NumDims(S) != 4 || TF_Dim(S, 2) != TF_Dim(S, 3)) {
    std::snprintf(msg, sizeof msg, "%s: 'scores' must have shape [B, h, N, N]", op);
    return fail(ctx, st, TF_INVALID_ARGUMENT, msg);
  }
  d.batch = (int)TF_Dim(S, 0); d.heads = (int)TF_Dim(S, 1); d.tokens = (int)TF_Dim(S, 2);
  if (TF_NumDims(C) != 5 || TF_Dim(C, 0) != d.heads || TF_Dim(C, 1) != 2 || TF_Dim(C, 3) != d.tokens) {
    std::snprintf(msg, sizeof msg, "%s: 'coeffs' must have shape [h=%d, 2, r, N=%d, G]", op, d.heads, d.tokens);
    return fail(ctx, st, TF_INVALID_ARGUMENT, msg);
  }
  d.rank = (int)TF_Dim(C, 2); d.grid = (int)TF_Dim(C, 4);
  if (checkDims(&d) != KARAT_OK) {
    std::snprintf(msg, sizeof msg, "%s: sizes B=%d h=%d N=%d r=%d G=%d out of range (>= 1, G <= %d)",
                  op, d.batch, d.heads, d.tokens, d.rank, d.grid, kMaxGrid);
    return fail(ctx, st, TF_INVALID_ARGUMENT, msg);
  }
  if (grad) {
    const TF_Tensor* Y = in.t[0];
    if (TF_NumDims(Y) != 4 || TF_Dim(Y, 0) != d.batch || TF_Dim(Y, 1) != d.heads ||
        TF_Dim(Y, 2) != d.tokens || TF_Dim(Y, 3) != d.rank) {
      std::snprintf(msg, sizeof msg, "%s: 'dy' must have shape [B=%d, h=%d, N=%d, r=%d]", op, d.batch,
                    d.heads, d.tokens, d.rank);
      return fail(ctx, st, TF_INVALID_ARGUMENT, msg);
    }
  }
  return true;
}

struct Outputs {
  TF_Tensor* t[2] = {nullptr, nullptr};
  ~Outputs() {
    for (TF_Tensor* x : t)
      if (x) TF_DeleteTensor(x);
  }
};

bool allocOut(TF_OpKernelContext* ctx, TF_Status* st, int index, const int64_t* dims, int nd, TF_Tensor** out) {
  size_t n = 1;
  for (int i = 0; i < nd; ++i) n *= (size_t)dims[i];
  *out = TF_AllocateOutput(ctx, index, TF_FLOAT, dims, nd, n * sizeof(float), st);
  if (TF_GetCode(st) != TF_OK) { TF_OpKernelContext_Failure(ctx, st); return false; }
  return true;
}

#ifndef KARAT_TF_CPU_ONLY

bool cudaCheck(TF_OpKernelContext* ctx, TF_Status* st, cudaError_t e, const char* what) {
  if (e == cudaSuccess) return true;
  char msg[512];
  std::snprintf(msg, sizeof msg, "karat CUDA op: %s: %s", what, cudaGetErrorString(e));
  return fail(ctx, st, TF_INTERNAL, msg);
}

bool karatCheck(TF_OpKernelContext* ctx, TF_Status* st, int s, const char* what) {
  if (s == KARAT_OK) return true;
  char msg[512];
  std::snprintf(msg, sizeof msg, "karat CUDA op: %s: %s (cuda error %d)", what, karat_status_string(s),
                karat_last_cuda_error());
  return fail(ctx, st, TF_INTERNAL, msg);
}
#endif

// ---- CPU implementation (float64 accumulation, features by the angle-addition recurrence) ----

void features(const float* srow, int N, int G, double* cf, double* sf) {
  for (int q = 0; q < N; ++q) {
    const double s = srow[q], c1 = std::cos(s), s1 = std::sin(s);
    double c = c1, sn = s1;
    for (int m = 0; m < G; ++m) {
      cf[q * G + m] = c;
      sf[q * G + m] = sn;
      const double cn = c * c1 - sn * s1;
      sn = sn * c1 + c * s1;
      c = cn;
    }
  }
}

void cpuForward(const float* S, const float* C, float* Hd, const karat_dims& d) {
  const int B = d.batch, H = d.heads, N = d.tokens, R = d.rank, G = d.grid;
  const size_t NG = (size_t)N * G;
  std::vector<double> cf(NG), sf(NG);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h)
      for (int i = 0; i < N; ++i) {
        const size_t row = ((size_t)b * H + h) * N + i;
        features(S + row * N, N, G, cf.data(), sf.data());
        for (int p = 0; p < R; ++p) {
          const float* A = C + (((size_t)h * 2) * R + p) * NG;
          const float* Bc = C + (((size_t)h * 2 + 1) * R + p) * NG;
          double acc = 0;
          for (size_t k = 0; k < NG; ++k) acc += A[k] * cf[k] + Bc[k] * sf[k];
          Hd[row * R + p] = (float)acc;
        }
      }
}

void cpuBackward(const float* Y, const float* S, const float* C, float* dS, float* dCout, const karat_dims& d) {
  const int B = d.batch, H = d.heads, N = d.tokens, R = d.rank, G = d.grid;
  const size_t NG = (size_t)N * G;
  std::vector<double> cf(NG), sf(NG), aAgg(NG), bAgg(NG), dC((size_t)H * 2 * R * NG, 0.0);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h)
      for (int i = 0; i < N; ++i) {
        const size_t row = ((size_t)b * H + h) * N + i;
        features(S + row * N, N, G, cf.data(), sf.data());
        std::fill(aAgg.begin(), aAgg.end(), 0.0);
        std::fill(bAgg.begin(), bAgg.end(), 0.0);
        for (int p = 0; p < R; ++p) {
          const double g = Y[row * R + p];
          const size_t ao = (((size_t)h * 2) * R + p) * NG, bo = (((size_t)h * 2 + 1) * R + p) * NG;
          for (size_t k = 0; k < NG; ++k) {
            aAgg[k] += g * C[ao + k];
            bAgg[k] += g * C[bo + k];
            dC[ao + k] += g * cf[k];
            dC[bo + k] += g * sf[k];
          }
        }
        for (int q = 0; q < N; ++q) {
          double acc = 0;
          for (int m = 0; m < G; ++m) acc += (m + 1) * (bAgg[q * G + m] * cf[q * G + m] - aAgg[q * G + m] * sf[q * G + m]);
          dS[row * N + q] = (float)acc;
        }
      }
  for (size_t k = 0; k < dC.size(); ++k) dCout[k] = (float)dC[k];
}

// ---- kernels ----

template <bool kGpu>
void computeForward(void*, TF_OpKernelContext* ctx) {
  TF_Status* st = TF_NewStatus();
  {
    Inputs in;
    karat_dims d;
    Outputs out;
    if (readInputs(ctx, st, false, in, d)) {
      const int64_t hd[4] = {d.batch, d.heads, d.tokens, d.rank};
      if (allocOut(ctx, st, 0, hd, 4, &out.t[0])) {
        const float* S = static_cast<const float*>(TF_TensorData(in.t[0]));
        const float* C = static_cast<const float*>(TF_TensorData(in.t[1]));
        float* Hd = static_cast<float*>(TF_TensorData(out.t[0]));
        if (!kGpu) {
          cpuForward(S, C, Hd, d);
        }
#ifndef KARAT_TF_CPU_ONLY
        else if (cudaCheck(ctx, st, cudaDeviceSynchronize(), "waiting for inputs") &&
                   karatCheck(ctx, st, karat_fourier_fwd(S, C, Hd, &d, 0), "karat_fourier_fwd")) {
          cudaCheck(ctx, st, cudaStreamSynchronize(0), "karat_fourier_fwd");
        }
#endif
      }
    }
  }
  TF_DeleteStatus(st);
}

template <bool kGpu>
void computeGrad(void*, TF_OpKernelContext* ctx) {
  TF_Status* st = TF_NewStatus();
  {
    Inputs in;
    karat_dims d;
    Outputs out;
    if (readInputs(ctx, st, true, in, d)) {
      const int64_t sd[4] = {d.batch, d.heads, d.tokens, d.tokens};
      const int64_t cd[5] = {d.heads, 2, d.rank, d.tokens, d.grid};
      if (allocOut(ctx, st, 0, sd, 4, &out.t[0]) && allocOut(ctx, st, 1, cd, 5, &out.t[1])) {
        const float* Y = static_cast<const float*>(TF_TensorData(in.t[0]));
        const float* S = static_cast<const float*>(TF_TensorData(in.t[1]));
        const float* C = static_cast<const float*>(TF_TensorData(in.t[2]));
        float* dS = static_cast<float*>(TF_TensorData(out.t[0]));
        float* dC = static_cast<float*>(TF_TensorData(out.t[1]));
        if (!kGpu) {
          cpuBackward(Y, S, C, dS, dC, d);
        }
#ifndef KARAT_TF_CPU_ONLY
        else {
          const size_t wsBytes = karat_fourier_bwd_workspace_bytes(&d);
          const int64_t wd[1] = {(int64_t)((wsBytes + 3) / 4)};
          TF_AllocatorAttributes attrs;
          attrs.struct_size = offsetof(TF_AllocatorAttributes, on_host) + sizeof(unsigned char);
          attrs.on_host = 0;
          TF_Tensor* ws = TF_AllocateTemp(ctx, TF_FLOAT, wd, 1, &attrs, st);
          if (TF_GetCode(st) != TF_OK) {
            TF_OpKernelContext_Failure(ctx, st);
          } else {
            if (cudaCheck(ctx, st, cudaDeviceSynchronize(), "waiting for inputs") &&
                karatCheck(ctx, st, karat_fourier_bwd(Y, S, C, dS, dC, TF_TensorData(ws), wsBytes, &d, 0),
                           "karat_fourier_bwd")) {
              cudaCheck(ctx, st, cudaStreamSynchronize(0), "karat_fourier_bwd");
            }
            TF_DeleteTensor(ws);
          }
        }
#endif
      }
    }
  }
  TF_DeleteStatus(st);
}

void unknownShape(TF_ShapeInferenceContext* ctx, TF_Status* st) { TF_ShapeInferenceContextSetUnknownShape(ctx, st); }

void report(TF_Status* st, const char* what) {
  if (TF_GetCode(st) != TF_OK) std::fprintf(stderr, "tfjs-karat: registering %s failed: %s\n", what, TF_Message(st));
}

bool registerAll() {
  TF_Status* st = TF_NewStatus();
  TF_OpDefinitionBuilder* f = TF_NewOpDefinitionBuilder(kFwdOp);
  TF_OpDefinitionBuilderAddInput(f, "scores: float");
  TF_OpDefinitionBuilderAddInput(f, "coeffs: float");
  TF_OpDefinitionBuilderAddOutput(f, "hidden: float");
  TF_OpDefinitionBuilderSetShapeInferenceFunction(f, &unknownShape);
  TF_RegisterOpDefinition(f, st);
  report(st, kFwdOp);

  TF_OpDefinitionBuilder* g = TF_NewOpDefinitionBuilder(kGradOp);
  TF_OpDefinitionBuilderAddInput(g, "dy: float");
  TF_OpDefinitionBuilderAddInput(g, "scores: float");
  TF_OpDefinitionBuilderAddInput(g, "coeffs: float");
  TF_OpDefinitionBuilderAddOutput(g, "dscores: float");
  TF_OpDefinitionBuilderAddOutput(g, "dcoeffs: float");
  TF_OpDefinitionBuilderSetShapeInferenceFunction(g, &unknownShape);
  TF_RegisterOpDefinition(g, st);
  report(st, kGradOp);

  TF_RegisterKernelBuilder("KaratFourierKArAtCpu", TF_NewKernelBuilder(kFwdOp, "CPU", nullptr, &computeForward<false>, nullptr), st);
  report(st, "KaratFourierKArAt CPU kernel");
  TF_RegisterKernelBuilder("KaratFourierKArAtGradCpu", TF_NewKernelBuilder(kGradOp, "CPU", nullptr, &computeGrad<false>, nullptr), st);
  report(st, "KaratFourierKArAtGrad CPU kernel");
#ifndef KARAT_TF_CPU_ONLY
  TF_RegisterKernelBuilder("KaratFourierKArAtGpu", TF_NewKernelBuilder(kFwdOp, "GPU", nullptr, &computeForward<true>, nullptr), st);
  report(st, "KaratFourierKArAt GPU kernel");
  TF_RegisterKernelBuilder("KaratFourierKArAtGradGpu", TF_NewKernelBuilder(kGradOp, "GPU", nullptr, &computeGrad<true>, nullptr), st);
  report(st, "KaratFourierKArAtGrad GPU kernel");
#endif
  TF_DeleteStatus(st);
  return true;
}

[[maybe_unused]] const bool kRegistered = registerAll();

}  // namespace
