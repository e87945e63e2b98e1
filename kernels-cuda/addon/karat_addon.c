/*
 * karat_cuda.node: Node-API addon (plain C, N-API version 8) over the C ABI of
 * include/karat_cuda.h, built only by `npm run build:cuda` (kernels-cuda/Makefile).
 *
 * Exports:
 *   abiVersion() -> number
 *   deviceInfo() -> {ok, count, name, computeCapability, error}
 *   fourierForward(scores: Float32Array, coeffs: Float32Array, dims: [B,h,N,r,G]) -> Float32Array
 *   fourierBackward(dy, scores, coeffs, dims) -> [dScores: Float32Array, dCoeffs: Float32Array]
 *       Host arrays in and out: copies to the GPU, runs the fused kernels, copies back (for
 *       tests and standalone use; the zero-copy route is the TensorFlow op library).
 *   loadTensorFlowLibrary(libtensorflowPath, opLibraryPath) -> {ok, message}
 *       Finds TF_LoadLibrary in the libtensorflow that @tensorflow/tfjs-node(-gpu) already
 *       loaded (dlopen RTLD_NOLOAD, so nothing new is mapped) and loads our custom-op library
 *       into TensorFlow's op and kernel registries.
 */
#define NAPI_VERSION 8
#include <dlfcn.h>
#include <node_api.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "../include/karat_cuda.h"
#include "../tensorflow/tf_load_library.h"

#define NAPI_CALL(env, call)                                   \
  do {                                                         \
    if ((call) != napi_ok) {                                   \
      napi_throw_error((env), NULL, "karat_cuda: N-API call failed: " #call); \
      return NULL;                                             \
    }                                                          \
  } while (0)

static napi_value throwf(napi_env env, const char* fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  napi_throw_error(env, "KARAT_CUDA", msg);
  return NULL;
}

static napi_value makeNumber(napi_env env, double v) {
  napi_value out;
  napi_create_double(env, v, &out);
  return out;
}

static napi_value makeString(napi_env env, const char* s) {
  napi_value out;
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &out);
  return out;
}

static napi_value makeBool(napi_env env, int v) {
  napi_value out;
  napi_get_boolean(env, v != 0, &out);
  return out;
}

/* Reads a Float32Array argument; returns 0 and throws on mismatch. */
static int getF32(napi_env env, napi_value v, const char* name, size_t expected, float** data) {
  bool isTA = false;
  napi_is_typedarray(env, v, &isTA);
  if (!isTA) {
    throwf(env, "karat_cuda: argument '%s' must be a Float32Array", name);
    return 0;
  }
  napi_typedarray_type type;
  size_t length;
  void* ptr;
  napi_value ab;
  size_t offset;
  if (napi_get_typedarray_info(env, v, &type, &length, &ptr, &ab, &offset) != napi_ok) {
    napi_throw_error(env, NULL, "karat_cuda: cannot read typed array");
    return 0;
  }
  if (type != napi_float32_array) {
    throwf(env, "karat_cuda: argument '%s' must be a Float32Array", name);
    return 0;
  }
  if (length != expected) {
    throwf(env, "karat_cuda: argument '%s' has %lld elements, expected %lld", name,
           (long long)length, (long long)expected);
    return 0;
  }
  *data = (float*)ptr;
  return 1;
}

static int getDims(napi_env env, napi_value v, karat_dims* d) {
  bool isArray = false;
  napi_is_array(env, v, &isArray);
  uint32_t len = 0;
  if (isArray) napi_get_array_length(env, v, &len);
  if (!isArray || len != 5) {
    napi_throw_type_error(env, NULL, "karat_cuda: argument 'dims' must be [B, h, N, r, G]");
    return 0;
  }
  int vals[5];
  for (uint32_t i = 0; i < 5; ++i) {
    napi_value e;
    int32_t x = 0;
    napi_get_element(env, v, i, &e);
    if (napi_get_value_int32(env, e, &x) != napi_ok) {
      napi_throw_type_error(env, NULL, "karat_cuda: 'dims' entries must be integers");
      return 0;
    }
    vals[i] = x;
  }
  d->batch = vals[0]; d->heads = vals[1]; d->tokens = vals[2]; d->rank = vals[3]; d->grid = vals[4];
  if (karat_check_dims(d) != KARAT_OK) {
    char msg[256];
    snprintf(msg, sizeof msg,
             "karat_cuda: dims [B=%d, h=%d, N=%d, r=%d, G=%d] out of range (all >= 1, G <= %d)",
             vals[0], vals[1], vals[2], vals[3], vals[4], KARAT_MAX_GRID);
    napi_throw_range_error(env, NULL, msg);
    return 0;
  }
  return 1;
}

static napi_value newF32(napi_env env, size_t n, float** data) {
  napi_value ab, ta;
  void* raw;
  if (napi_create_arraybuffer(env, n * sizeof(float), &raw, &ab) != napi_ok) return NULL;
  if (napi_create_typedarray(env, napi_float32_array, n, ab, 0, &ta) != napi_ok) return NULL;
  *data = (float*)raw;
  return ta;
}

static napi_value cudaThrow(napi_env env, const char* what, cudaError_t e) {
  char msg[512];
  snprintf(msg, sizeof msg, "karat_cuda: %s failed: %s (%s)", what, cudaGetErrorName(e),
           cudaGetErrorString(e));
  napi_throw_error(env, "KARAT_CUDA", msg);
  return NULL;
}

static napi_value karatThrow(napi_env env, const char* what, int status) {
  char msg[512];
  int ce = karat_last_cuda_error();
  snprintf(msg, sizeof msg, "karat_cuda: %s failed: %s%s%s", what, karat_status_string(status),
           status == KARAT_ERR_CUDA ? ": " : "",
           status == KARAT_ERR_CUDA ? cudaGetErrorString((cudaError_t)ce) : "");
  napi_throw_error(env, "KARAT_CUDA", msg);
  return NULL;
}

static napi_value AbiVersion(napi_env env, napi_callback_info info) {
  (void)info;
  return makeNumber(env, karat_abi_version());
}

static napi_value DeviceInfo(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  NAPI_CALL(env, napi_create_object(env, &out));
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  napi_set_named_property(env, out, "ok", makeBool(env, e == cudaSuccess && count > 0));
  napi_set_named_property(env, out, "count", makeNumber(env, e == cudaSuccess ? count : 0));
  if (e != cudaSuccess) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s: %s", cudaGetErrorName(e), cudaGetErrorString(e));
    napi_set_named_property(env, out, "error", makeString(env, msg));
    return out;
  }
  if (count > 0) {
    struct cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, 0) == cudaSuccess) {
      char cc[16];
      snprintf(cc, sizeof cc, "%d.%d", p.major, p.minor);
      napi_set_named_property(env, out, "name", makeString(env, p.name));
      napi_set_named_property(env, out, "computeCapability", makeString(env, cc));
    }
  }
  return out;
}

typedef struct {
  float* ptr[8];
  int n;
} DevBufs;

static void freeAll(DevBufs* b) {
  for (int i = 0; i < b->n; ++i) cudaFree(b->ptr[i]);
  b->n = 0;
}

static cudaError_t devAlloc(DevBufs* b, size_t bytes, float** out) {
  void* p = NULL;
  cudaError_t e = cudaMalloc(&p, bytes ? bytes : 4);
  if (e == cudaSuccess) { b->ptr[b->n++] = (float*)p; *out = (float*)p; }
  return e;
}

static napi_value FourierForward(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) return throwf(env, "karat_cuda: fourierForward(scores, coeffs, dims) needs 3 arguments");
  karat_dims d;
  if (!getDims(env, argv[2], &d)) return NULL;
  const size_t nS = (size_t)d.batch * d.heads * d.tokens * d.tokens;
  const size_t nC = (size_t)d.heads * 2 * d.rank * d.tokens * d.grid;
  const size_t nH = (size_t)d.batch * d.heads * d.tokens * d.rank;
  float *S, *C, *Hout;
  if (!getF32(env, argv[0], "scores", nS, &S) || !getF32(env, argv[1], "coeffs", nC, &C)) return NULL;
  napi_value result = newF32(env, nH, &Hout);
  if (!result) return NULL;
  DevBufs b = {{0}, 0};
  float *dS, *dC, *dH;
  cudaError_t e;
  if ((e = devAlloc(&b, nS * 4, &dS)) || (e = devAlloc(&b, nC * 4, &dC)) || (e = devAlloc(&b, nH * 4, &dH))) {
    freeAll(&b);
    return cudaThrow(env, "cudaMalloc", e);
  }
  if ((e = cudaMemcpy(dS, S, nS * 4, cudaMemcpyHostToDevice)) ||
      (e = cudaMemcpy(dC, C, nC * 4, cudaMemcpyHostToDevice))) {
    freeAll(&b);
    return cudaThrow(env, "cudaMemcpy (to device)", e);
  }
  int st = karat_fourier_fwd(dS, dC, dH, &d, 0);
  if (st != KARAT_OK) { freeAll(&b); return karatThrow(env, "karat_fourier_fwd", st); }
  e = cudaMemcpy(Hout, dH, nH * 4, cudaMemcpyDeviceToHost);
  freeAll(&b);
  if (e) return cudaThrow(env, "karat_fourier_fwd / cudaMemcpy (to host)", e);
  return result;
}

static napi_value FourierBackward(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) return throwf(env, "karat_cuda: fourierBackward(dy, scores, coeffs, dims) needs 4 arguments");
  karat_dims d;
  if (!getDims(env, argv[3], &d)) return NULL;
  const size_t nS = (size_t)d.batch * d.heads * d.tokens * d.tokens;
  const size_t nC = (size_t)d.heads * 2 * d.rank * d.tokens * d.grid;
  const size_t nH = (size_t)d.batch * d.heads * d.tokens * d.rank;
  float *Y, *S, *C, *oS, *oC;
  if (!getF32(env, argv[0], "dy", nH, &Y) || !getF32(env, argv[1], "scores", nS, &S) ||
      !getF32(env, argv[2], "coeffs", nC, &C))
    return NULL;
  napi_value outS = newF32(env, nS, &oS), outC = newF32(env, nC, &oC);
  if (!outS || !outC) return NULL;
  const size_t wsBytes = karat_fourier_bwd_workspace_bytes(&d);
  DevBufs b = {{0}, 0};
  float *dY, *dS, *dC, *gS, *gC, *ws;
  cudaError_t e;
  if ((e = devAlloc(&b, nH * 4, &dY)) || (e = devAlloc(&b, nS * 4, &dS)) || (e = devAlloc(&b, nC * 4, &dC)) ||
      (e = devAlloc(&b, nS * 4, &gS)) || (e = devAlloc(&b, nC * 4, &gC)) || (e = devAlloc(&b, wsBytes, &ws))) {
    freeAll(&b);
    return cudaThrow(env, "cudaMalloc", e);
  }
  if ((e = cudaMemcpy(dY, Y, nH * 4, cudaMemcpyHostToDevice)) ||
      (e = cudaMemcpy(dS, S, nS * 4, cudaMemcpyHostToDevice)) ||
      (e = cudaMemcpy(dC, C, nC * 4, cudaMemcpyHostToDevice))) {
    freeAll(&b);
    return cudaThrow(env, "cudaMemcpy (to device)", e);
  }
  int st = karat_fourier_bwd(dY, dS, dC, gS, gC, ws, wsBytes, &d, 0);
  if (st != KARAT_OK) { freeAll(&b); return karatThrow(env, "karat_fourier_bwd", st); }
  if ((e = cudaMemcpy(oS, gS, nS * 4, cudaMemcpyDeviceToHost)) ||
      (e = cudaMemcpy(oC, gC, nC * 4, cudaMemcpyDeviceToHost))) {
    freeAll(&b);
    return cudaThrow(env, "karat_fourier_bwd / cudaMemcpy (to host)", e);
  }
  freeAll(&b);
  napi_value arr;
  NAPI_CALL(env, napi_create_array_with_length(env, 2, &arr));
  napi_set_element(env, arr, 0, outS);
  napi_set_element(env, arr, 1, outC);
  return arr;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"abiVersion", NULL, AbiVersion, NULL, NULL, NULL, napi_default, NULL},
      {"deviceInfo", NULL, DeviceInfo, NULL, NULL, NULL, napi_default, NULL},
      {"fourierForward", NULL, FourierForward, NULL, NULL, NULL, napi_default, NULL},
      {"fourierBackward", NULL, FourierBackward, NULL, NULL, NULL, napi_default, NULL},
      {"loadTensorFlowLibrary", NULL, LoadTensorFlowLibrary, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
