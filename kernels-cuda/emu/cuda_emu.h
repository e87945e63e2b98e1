// cuda_emu.h: a small CPU emulation of the CUDA features that src/karat_fourier.cu and
// harness/karat_harness.cu use, so the exact kernel code can be executed and checked on a
// machine without a GPU (make -C kernels-cuda emu; part of npm run check:cuda).
//
// Each block runs as blockDim OS threads with a real barrier for __syncthreads(), so the tiling,
// shared-memory layouts, index arithmetic, shuffles and barriers are exercised as written
// (threads really run concurrently, so a missing barrier can show up as a wrong result).
// Dynamic shared memory is filled with NaN bytes before each block. Not emulated: warp
// scheduling, memory model details beyond barriers, performance. Compile with
//   g++ -std=c++20 -DKARAT_EMULATE -include emu/cuda_emu.h -x c++ file.cu -pthread
#ifndef KARAT_CUDA_EMU_H_
#define KARAT_CUDA_EMU_H_

#include <algorithm>
#include <barrier>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __launch_bounds__(x)

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) float4 {
  float x, y, z, w;
};

typedef void* cudaStream_t;
typedef int cudaError_t;
typedef struct CUevent_emu* cudaEvent_t;
enum { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2 };
enum cudaMemcpyKind { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
struct cudaDeviceProp {
  char name[256];
  int major, minor, multiProcessorCount;
  size_t totalGlobalMem;
};

namespace emu {
struct BlockCtx {
  std::barrier<>* bar;
  float* shfl;
  unsigned char* smem;
};
inline thread_local dim3 tIdx, bIdx;
inline dim3 gDim, bDim;
inline thread_local BlockCtx* ctx = nullptr;

template <typename K, typename... A>
void launch(K kernel, dim3 grid, dim3 block, size_t smemBytes, cudaStream_t, A... args) {
  gDim = grid;
  bDim = block;
  const unsigned n = block.x * block.y * block.z;
  std::vector<float4> smem(smemBytes / sizeof(float4) + 1);
  std::vector<float> shfl(n);
  std::barrier<> bar((std::ptrdiff_t)n);
  BlockCtx c{&bar, shfl.data(), reinterpret_cast<unsigned char*>(smem.data())};
  // One OS thread per CUDA thread for the whole launch; the blocks run one after another.
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (unsigned t = 0; t < n; ++t) {
    threads.emplace_back([&, t]() {
      tIdx = dim3(t, 0, 0);
      ctx = &c;
      for (unsigned z = 0; z < grid.z; ++z)
        for (unsigned y = 0; y < grid.y; ++y)
          for (unsigned x = 0; x < grid.x; ++x) {
            // NaN bytes: reads of shared memory the block never wrote show up.
            if (t == 0) std::memset(smem.data(), 0xFF, smem.size() * sizeof(float4));
            bar.arrive_and_wait();
            bIdx = dim3(x, y, z);
            kernel(args...);
            bar.arrive_and_wait();
          }
    });
  }
  for (auto& th : threads) th.join();
}
}  // namespace emu

#define threadIdx emu::tIdx
#define blockIdx emu::bIdx
#define blockDim emu::bDim
#define gridDim emu::gDim

inline void __syncthreads() { emu::ctx->bar->arrive_and_wait(); }

// Every thread of the block must call it (true for the kernels here).
inline float __shfl_xor_sync(unsigned, float v, int laneMask) {
  const unsigned t = threadIdx.x;
  emu::ctx->shfl[t] = v;
  __syncthreads();
  const float r = emu::ctx->shfl[(t & ~31u) | ((t & 31u) ^ (unsigned)laneMask)];
  __syncthreads();
  return r;
}

template <typename T>
inline T __ldg(const T* p) { return *p; }

using std::min;
using std::max;

#define KARAT_DYNAMIC_SMEM(T, name) T* name = reinterpret_cast<T*>(emu::ctx->smem)
#define KARAT_LAUNCH(kernel, grid, block, smem, stream, ...) \
  emu::launch(kernel, dim3(grid), dim3(block), smem, stream, __VA_ARGS__)

// ---- runtime API subset (host memory plays device memory) ----
template <typename K>
inline cudaError_t cudaFuncSetAttribute(K, cudaFuncAttribute, int) { return cudaSuccess; }
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline const char* cudaGetErrorName(cudaError_t e) { return e ? "cudaErrorEmulated" : "cudaSuccess"; }
inline const char* cudaGetErrorString(cudaError_t e) { return e ? "emulated error" : "no error"; }
inline cudaError_t cudaGetDeviceCount(int* n) { *n = 1; return cudaSuccess; }
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) {
  std::memset(p, 0, sizeof *p);
  std::strcpy(p->name, "CPU emulation of CUDA (kernels-cuda/emu)");
  p->multiProcessorCount = 1;
  return cudaSuccess;
}
inline cudaError_t cudaMemGetInfo(size_t* f, size_t* t) { *f = 0; *t = 0; return cudaSuccess; }
template <typename T>
inline cudaError_t cudaMalloc(T** p, size_t bytes) {
  *p = reinterpret_cast<T*>(std::aligned_alloc(256, (bytes + 255) / 256 * 256 + 256));
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
inline cudaError_t cudaFree(void* p) { std::free(p); return cudaSuccess; }
inline cudaError_t cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind) { std::memcpy(d, s, n); return cudaSuccess; }
inline cudaError_t cudaMemset(void* d, int v, size_t n) { std::memset(d, v, n); return cudaSuccess; }
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
struct CUevent_emu {
  std::chrono::steady_clock::time_point t;
};
inline cudaError_t cudaEventCreate(cudaEvent_t* e) { *e = new CUevent_emu; return cudaSuccess; }
inline cudaError_t cudaEventDestroy(cudaEvent_t e) { delete e; return cudaSuccess; }
inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t = nullptr) { e->t = std::chrono::steady_clock::now(); return cudaSuccess; }
inline cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  *ms = std::chrono::duration<float, std::milli>(b->t - a->t).count();
  return cudaSuccess;
}

#endif  // KARAT_CUDA_EMU_H_
