// Fused Fourier-KArAt CUDA kernels (forward, backward, deterministic coefficient-gradient
// reduction) behind the C ABI of include/karat_cuda.h.
//
// Notation (spec section 3): for one head h, a "row" is (b, i), there are B*N rows per head,
// s = S[b,h,i,q], features c_m = cos(m s), s_m = sin(m s) for m = 1..G come from ONE sincosf
// and the angle-addition recurrence, in registers, computed once per (row, q) and reused for
// every rank p of the current rank chunk.
//
// Tiling: a tile is ROWS (32) rows x QT (32) columns q. 128 threads = 32 rows x 4 q-lanes; a
// thread owns one row and the columns q = lane4 + 4k of the tile. Ranks are processed in chunks
// of RC (4, 8, 12 or 16, a template parameter, so accumulators stay in registers); r > 16 loops
// over chunks and recomputes the features (cheap next to the r-fold multiply-adds).
//
// Forward: one block per (32-row tile, head); it walks all q tiles, coefficients of the tile
// staged in shared memory in a [q][m][A|B][p] layout read as float4 broadcasts; the 4 q-lanes
// of a row are summed with two xor-shuffles (a fixed order).
//
// Backward: one block per (row group, q tile, head). For every 32-row tile of its group it
// computes the features once, uses them for dScores (complete per (row, q) since all ranks of
// a chunk are summed in-thread) and stores them in shared memory for the coefficient gradient,
// which the block accumulates in registers over all the rows of its group (items (q, m) x RC
// ranks). Each block writes its partial sums to workspace[group, h, 2, r, N, G]; a second
// kernel sums the groups in index order. No atomics: results are bitwise reproducible, and
// the group count depends only on the shape (not on the GPU), so they are the same on any GPU.
#ifdef KARAT_EMULATE
// CPU emulation (emu/cuda_emu.h, force-included): runs this exact code without a GPU.
#else
#include <cuda_runtime.h>
#define KARAT_DYNAMIC_SMEM(T, name) extern __shared__ T name[]
#define KARAT_LAUNCH(kernel, grid, block, smem, stream, ...) kernel<<<grid, block, smem, stream>>>(__VA_ARGS__)
#endif

#include <cstdint>

#include "../include/karat_cuda.h"

namespace {

constexpr int kRows = 32;        // rows per tile
constexpr int kQT = 32;          // q columns per tile
constexpr int kQL = 4;           // q-lanes per row
constexpr int kThreads = 128;    // kRows * kQL
constexpr int kSST = kQT + 4;    // padded row stride of the scores tile (bank-conflict free)
// Backward: aim for about this many blocks (a shape-only rule, so results do not depend on the
// GPU). The CPU emulation tests build with a small value to exercise groups of several tiles.
#ifndef KARAT_BWD_TARGET_BLOCKS
#define KARAT_BWD_TARGET_BLOCKS 512
#endif
constexpr int kTargetBlocks = KARAT_BWD_TARGET_BLOCKS;

static_assert(kRows * kQL == kThreads, "tile mapping");

thread_local int g_last_cuda_error = 0;

__host__ __device__ inline int coeffQStride(int G, int RC) { return 2 * G * RC + 4; }

// Loads the coefficient tile of (head, rank chunk p0, q tile q0) into C_s[ql][m][ab][pl].
template <int RC>
__device__ inline void loadCoeffTile(const float* __restrict__ C, float* C_s, int h, int R, int N,
                                     int G, int p0, int q0, int qm0, int qmCount) {
  const int NG = N * G;
  const int CQS = coeffQStride(G, RC);
  const size_t headBase = (size_t)h * 2 * R * NG;
  const int tileQG = min(kQT, N - q0) * G;
  // qm = ql * G + m; each thread owns at most two qm values (kQT * G <= 256).
#pragma unroll
  for (int it = 0; it < 2; ++it) {
    const int qm = qm0 + it * kThreads;
    if (it >= qmCount) break;
    const int ql = qm / G, m = qm - ql * G;
    float* dst = C_s + ql * CQS + m * 2 * RC;
#pragma unroll
    for (int ab = 0; ab < 2; ++ab) {
#pragma unroll
      for (int pl = 0; pl < RC; ++pl) {
        const int p = p0 + pl;
        float v = 0.f;
        if (p < R && qm < tileQG) v = C[headBase + (size_t)ab * R * NG + (size_t)p * NG + (size_t)q0 * G + qm];
        dst[ab * RC + pl] = v;
      }
    }
  }
}

// Loads scores[rows row0.., cols q0..] of head h into S_s (zero padded).
__device__ inline void loadScoreTile(const float* __restrict__ S, float* S_s, long long row0,
                                     long long rowsPerHead, int h, int H, int N, int q0) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  for (int rr = warp; rr < kRows; rr += kThreads / 32) {
    const long long row = row0 + rr;
    const int q = q0 + lane;
    float v = 0.f;
    if (row < rowsPerHead && q < N) {
      const long long b = row / N;
      const int i = (int)(row - b * N);
      v = __ldg(S + (((size_t)b * H + h) * N + i) * (size_t)N + q);
    }
    S_s[rr * kSST + lane] = v;
  }
}

__device__ inline size_t rowOffset(long long row, int h, int H, int N) {
  const long long b = row / N;
  const int i = (int)(row - b * N);
  return ((size_t)b * H + h) * N + i;
}

template <int RC>
__global__ void __launch_bounds__(kThreads)
fourierFwdKernel(const float* __restrict__ S, const float* __restrict__ C, float* __restrict__ Hid,
                 int B, int H, int N, int R, int G) {
  KARAT_DYNAMIC_SMEM(float4, smem4);
  float* S_s = reinterpret_cast<float*>(smem4);
  float* C_s = S_s + kRows * kSST;
  const int CQS = coeffQStride(G, RC);
  const int h = blockIdx.y;
  const long long rowsPerHead = (long long)B * N;
  const long long row0 = (long long)blockIdx.x * kRows;
  const int tid = threadIdx.x;
  const int lr = tid >> 2, sub = tid & 3;
  const long long myRow = row0 + lr;
  const int qmCount = (kQT * G + kThreads - 1 - tid) / kThreads;  // how many of tid, tid+128 < kQT*G

  for (int p0 = 0; p0 < R; p0 += RC) {
    float acc[RC];
#pragma unroll
    for (int p = 0; p < RC; ++p) acc[p] = 0.f;

    for (int q0 = 0; q0 < N; q0 += kQT) {
      __syncthreads();
      loadScoreTile(S, S_s, row0, rowsPerHead, h, H, N, q0);
      loadCoeffTile<RC>(C, C_s, h, R, N, G, p0, q0, tid, qmCount);
      __syncthreads();
      const int tileQ = min(kQT, N - q0);
      for (int ql = sub; ql < tileQ; ql += kQL) {
        float s1, c1;
        sincosf(S_s[lr * kSST + ql], &s1, &c1);
        float c = c1, sn = s1;
        const float* cq = C_s + ql * CQS;
        for (int m = 0; m < G; ++m) {
          const float4* a4 = reinterpret_cast<const float4*>(cq + m * 2 * RC);
          const float4* b4 = reinterpret_cast<const float4*>(cq + m * 2 * RC + RC);
#pragma unroll
          for (int j = 0; j < RC / 4; ++j) {
            const float4 a = a4[j], bb = b4[j];
            acc[4 * j + 0] = fmaf(a.x, c, fmaf(bb.x, sn, acc[4 * j + 0]));
            acc[4 * j + 1] = fmaf(a.y, c, fmaf(bb.y, sn, acc[4 * j + 1]));
            acc[4 * j + 2] = fmaf(a.z, c, fmaf(bb.z, sn, acc[4 * j + 2]));
            acc[4 * j + 3] = fmaf(a.w, c, fmaf(bb.w, sn, acc[4 * j + 3]));
          }
          const float cn = c * c1 - sn * s1;
          sn = fmaf(sn, c1, c * s1);
          c = cn;
        }
      }
    }
    // Sum the 4 q-lanes of each row (butterfly: every lane ends with the same value).
#pragma unroll
    for (int p = 0; p < RC; ++p) {
      float v = acc[p];
      v += __shfl_xor_sync(0xffffffffu, v, 1);
      v += __shfl_xor_sync(0xffffffffu, v, 2);
      acc[p] = v;
    }
    if (myRow < rowsPerHead) {
      float* out = Hid + rowOffset(myRow, h, H, N) * R;
#pragma unroll
      for (int pl = 0; pl < RC; ++pl) {
        if ((pl & 3) == sub && p0 + pl < R) out[p0 + pl] = acc[pl];
      }
    }
  }
}

template <int RC>
__global__ void __launch_bounds__(kThreads)
fourierBwdKernel(const float* __restrict__ dY, const float* __restrict__ S,
                 const float* __restrict__ C, float* __restrict__ dS, float* __restrict__ ws,
                 int B, int H, int N, int R, int G, int tilesPerGroup) {
  KARAT_DYNAMIC_SMEM(float4, smem4);
  const int CQS = coeffQStride(G, RC);
  const int FST = kQT * G;
  float* S_s = reinterpret_cast<float*>(smem4);  // scores tile, then dS tile
  float* g_s = S_s + kRows * kSST;               // dy tile [kRows][RC]
  float* C_s = g_s + kRows * RC;                 // coefficients [kQT][CQS]
  float* Fc_s = C_s + kQT * CQS;                 // cos features [kRows][kQT*G]
  float* Fs_s = Fc_s + kRows * FST;              // sin features
  const int group = blockIdx.x;
  const int q0 = blockIdx.y * kQT;
  const int h = blockIdx.z;
  const long long rowsPerHead = (long long)B * N;
  const long long rowTiles = (rowsPerHead + kRows - 1) / kRows;
  const long long tBegin = (long long)group * tilesPerGroup;
  const long long tEnd = min(rowTiles, tBegin + tilesPerGroup);
  const int tid = threadIdx.x;
  const int lr = tid >> 2, sub = tid & 3;
  const int warp = tid >> 5, lane = tid & 31;
  const int tileQ = min(kQT, N - q0);
  const int qmCount = (kQT * G + kThreads - 1 - tid) / kThreads;
  const int NG = N * G;

  for (int p0 = 0; p0 < R; p0 += RC) {
    __syncthreads();
    loadCoeffTile<RC>(C, C_s, h, R, N, G, p0, q0, tid, qmCount);
    float accA[2][RC], accB[2][RC];
#pragma unroll
    for (int it = 0; it < 2; ++it)
#pragma unroll
      for (int p = 0; p < RC; ++p) accA[it][p] = accB[it][p] = 0.f;

    for (long long t = tBegin; t < tEnd; ++t) {
      const long long row0 = t * kRows;
      __syncthreads();
      loadScoreTile(S, S_s, row0, rowsPerHead, h, H, N, q0);
      for (int e = tid; e < kRows * RC; e += kThreads) {
        const int rr = e / RC, pl = e - rr * RC;
        const long long row = row0 + rr;
        float v = 0.f;
        if (row < rowsPerHead && p0 + pl < R) v = __ldg(dY + rowOffset(row, h, H, N) * R + p0 + pl);
        g_s[e] = v;
      }
      __syncthreads();

      // Phase 1: features once per (row, q); dScores; features to shared memory.
      {
        float gv[RC];
        const float4* g4 = reinterpret_cast<const float4*>(g_s + lr * RC);
#pragma unroll
        for (int j = 0; j < RC / 4; ++j) {
          const float4 v = g4[j];
          gv[4 * j] = v.x; gv[4 * j + 1] = v.y; gv[4 * j + 2] = v.z; gv[4 * j + 3] = v.w;
        }
        for (int ql = sub; ql < tileQ; ql += kQL) {
          float s1, c1;
          sincosf(S_s[lr * kSST + ql], &s1, &c1);
          float c = c1, sn = s1;
          const float* cq = C_s + ql * CQS;
          float ds = 0.f;
          for (int m = 0; m < G; ++m) {
            const float4* a4 = reinterpret_cast<const float4*>(cq + m * 2 * RC);
            const float4* b4 = reinterpret_cast<const float4*>(cq + m * 2 * RC + RC);
            float aa = 0.f, bb = 0.f;
#pragma unroll
            for (int j = 0; j < RC / 4; ++j) {
              const float4 a = a4[j], b = b4[j];
              aa = fmaf(gv[4 * j], a.x, aa); bb = fmaf(gv[4 * j], b.x, bb);
              aa = fmaf(gv[4 * j + 1], a.y, aa); bb = fmaf(gv[4 * j + 1], b.y, bb);
              aa = fmaf(gv[4 * j + 2], a.z, aa); bb = fmaf(gv[4 * j + 2], b.z, bb);
              aa = fmaf(gv[4 * j + 3], a.w, aa); bb = fmaf(gv[4 * j + 3], b.w, bb);
            }
            ds = fmaf((float)(m + 1), bb * c - aa * sn, ds);
            Fc_s[lr * FST + ql * G + m] = c;
            Fs_s[lr * FST + ql * G + m] = sn;
            const float cn = c * c1 - sn * s1;
            sn = fmaf(sn, c1, c * s1);
            c = cn;
          }
          S_s[lr * kSST + ql] = ds;  // only this thread read this entry
        }
      }
      __syncthreads();

      // dScores tile out, coalesced (accumulated over rank chunks when r > RC).
      for (int rr = warp; rr < kRows; rr += kThreads / 32) {
        const long long row = row0 + rr;
        if (row < rowsPerHead && lane < tileQ) {
          float* dst = dS + rowOffset(row, h, H, N) * (size_t)N + q0 + lane;
          const float v = S_s[rr * kSST + lane];
          if (p0 == 0) *dst = v; else *dst += v;
        }
      }

      // Phase 2: coefficient gradient, items qm = (q, m), rows summed in order.
#pragma unroll
      for (int it = 0; it < 2; ++it) {
        if (it < qmCount) {
          const int qm = tid + it * kThreads;
          for (int rr = 0; rr < kRows; ++rr) {
            const float c = Fc_s[rr * FST + qm], sn = Fs_s[rr * FST + qm];
            const float4* g4 = reinterpret_cast<const float4*>(g_s + rr * RC);
#pragma unroll
            for (int j = 0; j < RC / 4; ++j) {
              const float4 g = g4[j];
              accA[it][4 * j] = fmaf(g.x, c, accA[it][4 * j]);
              accB[it][4 * j] = fmaf(g.x, sn, accB[it][4 * j]);
              accA[it][4 * j + 1] = fmaf(g.y, c, accA[it][4 * j + 1]);
              accB[it][4 * j + 1] = fmaf(g.y, sn, accB[it][4 * j + 1]);
              accA[it][4 * j + 2] = fmaf(g.z, c, accA[it][4 * j + 2]);
              accB[it][4 * j + 2] = fmaf(g.z, sn, accB[it][4 * j + 2]);
              accA[it][4 * j + 3] = fmaf(g.w, c, accA[it][4 * j + 3]);
              accB[it][4 * j + 3] = fmaf(g.w, sn, accB[it][4 * j + 3]);
            }
          }
        }
      }
    }

    // Partial coefficient gradient of this block -> ws[group, h, ab, p, q, m].
    const size_t perGroup = (size_t)H * 2 * R * NG;
    float* wsBase = ws + (size_t)group * perGroup + (size_t)h * 2 * R * NG + (size_t)q0 * G;
#pragma unroll
    for (int it = 0; it < 2; ++it) {
      const int qm = tid + it * kThreads;
      if (it < qmCount && qm < tileQ * G) {
#pragma unroll
        for (int pl = 0; pl < RC; ++pl) {
          const int p = p0 + pl;
          if (p < R) {
            wsBase[(size_t)p * NG + qm] = accA[it][pl];
            wsBase[(size_t)R * NG + (size_t)p * NG + qm] = accB[it][pl];
          }
        }
      }
    }
  }
}

__global__ void reduceGroupsKernel(const float* __restrict__ ws, float* __restrict__ out,
                                   size_t perGroup, int groups) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < perGroup;
       i += (size_t)gridDim.x * blockDim.x) {
    float acc = 0.f;
    for (int g = 0; g < groups; ++g) acc += ws[(size_t)g * perGroup + i];
    out[i] = acc;
  }
}

struct BwdPlan {
  int qTiles;
  int tilesPerGroup;
  int groups;
};

BwdPlan planBwd(const karat_dims& d) {
  BwdPlan p;
  p.qTiles = (d.tokens + kQT - 1) / kQT;
  const long long rowTiles = ((long long)d.batch * d.tokens + kRows - 1) / kRows;
  const long long pairs = (long long)p.qTiles * d.heads;
  long long want = (kTargetBlocks + pairs - 1) / pairs;
  if (want < 1) want = 1;
  if (want > rowTiles) want = rowTiles;
  long long tpg = (rowTiles + want - 1) / want;
  p.tilesPerGroup = (int)tpg;
  p.groups = (int)((rowTiles + tpg - 1) / tpg);
  return p;
}

int rankChunk(int r) { return r <= 4 ? 4 : r <= 8 ? 8 : r <= 12 ? 12 : 16; }

size_t fwdSmemBytes(int G, int RC) {
  return sizeof(float) * ((size_t)kRows * kSST + (size_t)kQT * coeffQStride(G, RC));
}

size_t bwdSmemBytes(int G, int RC) {
  return sizeof(float) * ((size_t)kRows * kSST + (size_t)kRows * RC +
                          (size_t)kQT * coeffQStride(G, RC) + 2 * (size_t)kRows * kQT * G);
}

int cudaFail(cudaError_t e) {
  g_last_cuda_error = (int)e;
  return KARAT_ERR_CUDA;
}

template <typename K>
cudaError_t allowSmem(K kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return cudaSuccess;
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
}

template <int RC>
int launchFwd(const float* S, const float* C, float* Hd, const karat_dims& d, cudaStream_t st) {
  const size_t smem = fwdSmemBytes(d.grid, RC);
  cudaError_t e = allowSmem(fourierFwdKernel<RC>, smem);
  if (e != cudaSuccess) return cudaFail(e);
  const long long rows = (long long)d.batch * d.tokens;
  dim3 grid((unsigned)((rows + kRows - 1) / kRows), (unsigned)d.heads);
  KARAT_LAUNCH(fourierFwdKernel<RC>, grid, kThreads, smem, st, S, C, Hd, d.batch, d.heads, d.tokens, d.rank, d.grid);
  e = cudaGetLastError();
  return e == cudaSuccess ? KARAT_OK : cudaFail(e);
}

template <int RC>
int launchBwd(const float* dY, const float* S, const float* C, float* dS, float* dC, float* ws,
              const karat_dims& d, cudaStream_t st) {
  const BwdPlan plan = planBwd(d);
  const size_t smem = bwdSmemBytes(d.grid, RC);
  cudaError_t e = allowSmem(fourierBwdKernel<RC>, smem);
  if (e != cudaSuccess) return cudaFail(e);
  dim3 grid((unsigned)plan.groups, (unsigned)plan.qTiles, (unsigned)d.heads);
  KARAT_LAUNCH(fourierBwdKernel<RC>, grid, kThreads, smem, st, dY, S, C, dS, ws, d.batch, d.heads,
               d.tokens, d.rank, d.grid, plan.tilesPerGroup);
  e = cudaGetLastError();
  if (e != cudaSuccess) return cudaFail(e);
  const size_t perGroup = (size_t)d.heads * 2 * d.rank * d.tokens * d.grid;
  const int threads = 256;
  size_t blocks = (perGroup + threads - 1) / threads;
  if (blocks > 4096) blocks = 4096;
  KARAT_LAUNCH(reduceGroupsKernel, (unsigned)blocks, threads, 0, st, ws, dC, perGroup, plan.groups);
  e = cudaGetLastError();
  return e == cudaSuccess ? KARAT_OK : cudaFail(e);
}

}  // namespace

extern "C" {

int karat_check_dims(const karat_dims* d) {
  if (d == nullptr) return KARAT_ERR_INVALID_ARGUMENT;
  if (d->batch < 1 || d->heads < 1 || d->tokens < 1 || d->rank < 1) return KARAT_ERR_INVALID_ARGUMENT;
  if (d->grid < 1 || d->grid > KARAT_MAX_GRID) return KARAT_ERR_INVALID_ARGUMENT;
  if (d->heads > 65535) return KARAT_ERR_INVALID_ARGUMENT;  // grid.y / grid.z limit
  const double elems = (double)d->batch * d->heads * (double)d->tokens * d->tokens;
  if (elems >= 4.0e18) return KARAT_ERR_INVALID_ARGUMENT;
  return KARAT_OK;
}

size_t karat_fourier_bwd_workspace_bytes(const karat_dims* d) {
  if (karat_check_dims(d) != KARAT_OK) return 0;
  const BwdPlan plan = planBwd(*d);
  return sizeof(float) * (size_t)plan.groups * d->heads * 2 * d->rank * d->tokens * d->grid;
}

int karat_fourier_fwd(const float* scores, const float* coeffs, float* hidden, const karat_dims* d,
                      cudaStream_t stream) {
  const int rc = karat_check_dims(d);
  if (rc != KARAT_OK) return rc;
  if (!scores || !coeffs || !hidden) return KARAT_ERR_INVALID_ARGUMENT;
  switch (rankChunk(d->rank)) {
    case 4: return launchFwd<4>(scores, coeffs, hidden, *d, stream);
    case 8: return launchFwd<8>(scores, coeffs, hidden, *d, stream);
    case 12: return launchFwd<12>(scores, coeffs, hidden, *d, stream);
    default: return launchFwd<16>(scores, coeffs, hidden, *d, stream);
  }
}

int karat_fourier_bwd(const float* dy, const float* scores, const float* coeffs, float* dscores,
                      float* dcoeffs, void* workspace, size_t workspace_bytes, const karat_dims* d,
                      cudaStream_t stream) {
  const int rc = karat_check_dims(d);
  if (rc != KARAT_OK) return rc;
  if (!dy || !scores || !coeffs || !dscores || !dcoeffs) return KARAT_ERR_INVALID_ARGUMENT;
  const size_t need = karat_fourier_bwd_workspace_bytes(d);
  if (workspace == nullptr || workspace_bytes < need) return KARAT_ERR_WORKSPACE;
  float* ws = static_cast<float*>(workspace);
  switch (rankChunk(d->rank)) {
    case 4: return launchBwd<4>(dy, scores, coeffs, dscores, dcoeffs, ws, *d, stream);
    case 8: return launchBwd<8>(dy, scores, coeffs, dscores, dcoeffs, ws, *d, stream);
    case 12: return launchBwd<12>(dy, scores, coeffs, dscores, dcoeffs, ws, *d, stream);
    default: return launchBwd<16>(dy, scores, coeffs, dscores, dcoeffs, ws, *d, stream);
  }
}

const char* karat_status_string(int status) {
  switch (status) {
    case KARAT_OK: return "ok";
    case KARAT_ERR_INVALID_ARGUMENT: return "invalid argument (dims out of range or null pointer)";
    case KARAT_ERR_WORKSPACE: return "workspace missing or too small";
    case KARAT_ERR_CUDA: return "CUDA runtime error";
    default: return "unknown karat status";
  }
}

int karat_last_cuda_error(void) { return g_last_cuda_error; }

int karat_abi_version(void) { return KARAT_CUDA_ABI_VERSION; }

}  // extern "C"
