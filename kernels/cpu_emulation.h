// Runs the GPU kernels on the CPU, thread by thread, for testing without a GPU.
//
// Included by gpu_compat.h when KNLP_CPU_EMULATION is defined (the target
// //kernels:decode_emu compiles decode_attention.cu with g++ this way). Every
// GPU thread of a block is a ucontext fiber on one OS thread; blocks run one
// after another. __syncthreads() waits for every thread of the block and a
// shuffle for every lane of its 32-lane warp, so the kernels' indexing,
// reductions and shared-memory use execute exactly as written. A barrier
// that not all threads reach (divergence) aborts with a message instead of
// hanging. Device pointers are host pointers. This checks the logic, not the
// hardware: memory ordering, timing and the compilers' device code are not
// exercised.
#pragma once

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include <functional>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint4 {
  uint32_t x, y, z, w;
};
struct uint2 {
  uint32_t x, y;
};
inline uint4 make_uint4(uint32_t x, uint32_t y, uint32_t z, uint32_t w) { return {x, y, z, w}; }
inline uint2 make_uint2(uint32_t x, uint32_t y) { return {x, y}; }
inline int min(int a, int b) { return a < b ? a : b; }

namespace knlp_emu {

inline dim3 g_thread_idx, g_block_idx, g_block_dim, g_grid_dim;

enum class Wait { kNone, kWarp, kBlock, kDone };

struct Fiber {
  ucontext_t ctx;
  std::vector<char> stack;
  Wait wait = Wait::kNone;
};

inline std::vector<Fiber>* g_fibers = nullptr;
inline ucontext_t g_scheduler;
inline int g_current = 0;
inline const std::function<void()>* g_body = nullptr;
inline std::vector<float> g_exchange;

inline void yield(Wait why) {
  Fiber& f = (*g_fibers)[g_current];
  f.wait = why;
  swapcontext(&f.ctx, &g_scheduler);
  g_thread_idx = dim3(g_current);
}

inline void trampoline() {
  (*g_body)();
  (*g_fibers)[g_current].wait = Wait::kDone;
  setcontext(&g_scheduler);
}

[[noreturn]] inline void die(const char* what) {
  fprintf(stderr, "knlp cpu emulation: %s (block %u,%u,%u)\n", what, g_block_idx.x, g_block_idx.y,
          g_block_idx.z);
  abort();
}

// Runs one block: every thread until it waits or ends, then releases the
// barriers whose threads have all arrived.
inline void run_block(unsigned threads, const std::function<void()>& body) {
  std::vector<Fiber> fibers(threads);
  g_fibers = &fibers;
  g_body = &body;
  g_exchange.assign(threads, 0.0f);
  for (unsigned t = 0; t < threads; ++t) {
    fibers[t].stack.resize(256 * 1024);
    getcontext(&fibers[t].ctx);
    fibers[t].ctx.uc_stack.ss_sp = fibers[t].stack.data();
    fibers[t].ctx.uc_stack.ss_size = fibers[t].stack.size();
    fibers[t].ctx.uc_link = nullptr;
    makecontext(&fibers[t].ctx, trampoline, 0);
  }
  for (;;) {
    bool ran = false;
    for (unsigned t = 0; t < threads; ++t) {
      if (fibers[t].wait != Wait::kNone) continue;
      g_current = static_cast<int>(t);
      g_thread_idx = dim3(t);
      swapcontext(&g_scheduler, &fibers[t].ctx);
      ran = true;
    }
    if (ran) continue;
    // Everyone waits or is done: release complete barriers.
    unsigned done = 0, at_block = 0;
    for (auto& f : fibers) {
      done += f.wait == Wait::kDone;
      at_block += f.wait == Wait::kBlock;
    }
    if (done == threads) break;
    bool released = false;
    if (at_block == threads) {
      for (auto& f : fibers) f.wait = Wait::kNone;
      continue;
    }
    for (unsigned w = 0; w < threads; w += 32) {
      const unsigned end = w + 32 < threads ? w + 32 : threads;
      unsigned at_warp = 0;
      for (unsigned t = w; t < end; ++t) at_warp += fibers[t].wait == Wait::kWarp;
      if (at_warp == end - w) {
        for (unsigned t = w; t < end; ++t) fibers[t].wait = Wait::kNone;
        released = true;
      } else if (at_warp != 0) {
        die("a warp shuffle that not every lane of the warp reached");
      }
    }
    if (!released) die("a __syncthreads() that not every thread of the block reached");
  }
  g_fibers = nullptr;
}

template <typename Kernel, typename... Args>
void launch(dim3 grid, dim3 block, Kernel kernel, Args... args) {
  if (block.y != 1 || block.z != 1) die("only 1-d blocks are emulated");
  g_grid_dim = grid;
  g_block_dim = block;
  const std::function<void()> body = [&] { kernel(args...); };
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        g_block_idx = dim3(x, y, z);
        run_block(block.x, body);
      }
}

inline float shfl_xor(float v, int mask) {
  const unsigned me = g_thread_idx.x;
  g_exchange[me] = v;
  yield(Wait::kWarp);
  const float r = g_exchange[(me & ~31u) | ((me & 31u) ^ static_cast<unsigned>(mask))];
  yield(Wait::kWarp);
  return r;
}

}  // namespace knlp_emu

#define threadIdx (knlp_emu::g_thread_idx)
#define blockIdx (knlp_emu::g_block_idx)
#define blockDim (knlp_emu::g_block_dim)
#define gridDim (knlp_emu::g_grid_dim)
inline void __syncthreads() { knlp_emu::yield(knlp_emu::Wait::kBlock); }

// fp16 bits -> float, exact (subnormals included), for the V decoder.
struct __half {
  unsigned short bits;
};
inline __half __ushort_as_half(unsigned short b) { return {b}; }
inline float __half2float(__half h) {
  const uint32_t sign = static_cast<uint32_t>(h.bits & 0x8000u) << 16;
  const uint32_t exp = (h.bits >> 10) & 0x1fu, man = h.bits & 0x3ffu;
  float mag;
  if (exp == 0) {
    mag = ldexpf(static_cast<float>(man), -24);
  } else if (exp == 31) {
    mag = man ? NAN : INFINITY;
  } else {
    mag = ldexpf(static_cast<float>(man | 0x400u), static_cast<int>(exp) - 25);
  }
  uint32_t u;
  memcpy(&u, &mag, 4);
  u |= sign;
  memcpy(&mag, &u, 4);
  return mag;
}

#define KNLP_VENDOR "cpu-emulation"
typedef void* gpuStream_t;
typedef int gpuError_t;
#define gpuSuccess 0
inline gpuError_t gpuGetLastError() { return 0; }
inline const char* gpuGetErrorString(gpuError_t) { return "no error"; }
inline gpuError_t gpuSetDevice(int) { return 0; }
// Blocks run one after another, so atomics and fences need nothing more.
inline int atomicAdd(int* p, int v) {
  const int old = *p;
  *p = old + v;
  return old;
}
inline void __threadfence() {}
// A fixed residency for the split planner (there is no device to ask).
#define gpuOccupancyBlocksPerSm(out, kernel, threads) (*(out) = 4, 0)
#define KNLP_SHFL_XOR(value, lane_mask) knlp_emu::shfl_xor((value), (lane_mask))
#define KNLP_LAUNCH(kernel, grid, block, stream, ...) knlp_emu::launch((grid), (block), kernel, __VA_ARGS__)
