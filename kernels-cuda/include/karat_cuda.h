/*
 * karat_cuda.h: C ABI of the fused Fourier-KArAt CUDA kernels (tfjs-karat, kernels-cuda/).
 *
 * Shapes (row-major, float32, all pointers are DEVICE pointers):
 *   scores  [B, h, N, N]      S = Q K^T / sqrt(d)
 *   coeffs  [h, 2, r, N, G]   index 0 = cosine coefficients A, 1 = sine coefficients B
 *   hidden  [B, h, N, r]      hidden[b,h,i,p] = sum_q sum_m A[h,p,q,m] cos(m s) + B[h,p,q,m] sin(m s)
 *   dy      [B, h, N, r]      upstream gradient dL/dhidden
 *   dscores [B, h, N, N], dcoeffs [h, 2, r, N, G]
 * with s = scores[b,h,i,q] and m = 1..G (see docs/cuda.md and the project spec, section 3).
 *
 * Limits: B, h, N, r >= 1 and 1 <= G <= KARAT_MAX_GRID; B*h*N*N < 2^62.
 * Every call is asynchronous on `stream` (0 = the legacy default stream); no call allocates
 * device memory. The backward pass needs a device workspace of
 * karat_fourier_bwd_workspace_bytes(dims) bytes (per-block partial sums of the coefficient
 * gradient, reduced in a fixed order, so dcoeffs is bitwise deterministic run to run and
 * across GPU models: no floating-point atomics are used anywhere).
 */
#ifndef KARAT_CUDA_H_
#define KARAT_CUDA_H_

#include <stddef.h>
#if defined(KARAT_TF_CPU_ONLY)
/* the TensorFlow op library's CPU-only build (no CUDA headers): the stream type as CUDA declares it */
typedef struct CUstream_st* cudaStream_t;
#elif !defined(KARAT_EMULATE)
#include <cuda_runtime_api.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define KARAT_MAX_GRID 8
#define KARAT_CUDA_ABI_VERSION 1

typedef enum karat_status {
  KARAT_OK = 0,
  KARAT_ERR_INVALID_ARGUMENT = 1, /* a dimension out of range or a null pointer */
  KARAT_ERR_WORKSPACE = 2,        /* workspace missing or smaller than required */
  KARAT_ERR_CUDA = 3              /* a CUDA runtime error (see karat_last_cuda_error) */
} karat_status;

typedef struct karat_dims {
  int batch;   /* B */
  int heads;   /* h */
  int tokens;  /* N */
  int rank;    /* r */
  int grid;    /* G, 1..KARAT_MAX_GRID */
} karat_dims;

/* Checks dims; KARAT_OK when the kernels accept them. */
int karat_check_dims(const karat_dims* dims);

/* Bytes of device workspace karat_fourier_bwd needs (0 when dims are invalid). */
size_t karat_fourier_bwd_workspace_bytes(const karat_dims* dims);

/* hidden = FourierKArAt(scores, coeffs). */
int karat_fourier_fwd(const float* scores, const float* coeffs, float* hidden,
                      const karat_dims* dims, cudaStream_t stream);

/* dscores, dcoeffs for upstream dy. Overwrites dscores and dcoeffs entirely. */
int karat_fourier_bwd(const float* dy, const float* scores, const float* coeffs,
                      float* dscores, float* dcoeffs, void* workspace, size_t workspace_bytes,
                      const karat_dims* dims, cudaStream_t stream);

/* Human-readable name of a karat_status. */
const char* karat_status_string(int status);

/* The CUDA error (cudaError_t as int) behind the last KARAT_ERR_CUDA on this thread. */
int karat_last_cuda_error(void);

/* KARAT_CUDA_ABI_VERSION of the compiled library. */
int karat_abi_version(void);

#ifdef __cplusplus
}
#endif

#endif /* KARAT_CUDA_H_ */
