// Portability layer: lets one kernel source compile with nvcc (CUDA) and hipcc
// (HIP on AMD), or with g++ as a CPU emulation for tests (cpu_emulation.h),
// and defines the number formats the K16/V8 cache uses.
//
// bf16 is handled as raw 16-bit patterns (a bf16 is the top half of a float),
// so no vendor bf16 type is needed and the K path stays bit-exact. fp8 e4m3
// ("e4m3fn": 4 exponent bits, bias 7, 3 mantissa bits, no infinities, 0x7f and
// 0xff are NaN, largest finite 448) is encoded and decoded by hand: hipcc 5.2
// (ROCm 5.2, clang 15) has no fp8 type, and doing it by hand on both vendors
// gives one bit-exact behaviour, the same as torch.float8_e4m3fn's conversion.
#pragma once

#include <stdint.h>

#if defined(KNLP_CPU_EMULATION)
#include "kernels/cpu_emulation.h"
#elif defined(__HIPCC__)
#include <hip/hip_fp16.h>
#include <hip/hip_runtime.h>
#define KNLP_VENDOR "rocm"
typedef hipStream_t gpuStream_t;
typedef hipError_t gpuError_t;
#define gpuSuccess hipSuccess
#define gpuGetLastError hipGetLastError
#define gpuGetErrorString hipGetErrorString
#define gpuSetDevice hipSetDevice
#define gpuOccupancyBlocksPerSm(out, kernel, threads) \
  hipOccupancyMaxActiveBlocksPerMultiprocessor((out), (kernel), (threads), 0)
#define KNLP_SHFL_XOR(value, lane_mask) __shfl_xor((value), (lane_mask))
#define KNLP_LAUNCH(kernel, grid, block, stream, ...) \
  kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__)
#else
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#define KNLP_VENDOR "cuda"
typedef cudaStream_t gpuStream_t;
typedef cudaError_t gpuError_t;
#define gpuSuccess cudaSuccess
#define gpuGetLastError cudaGetLastError
#define gpuGetErrorString cudaGetErrorString
#define gpuSetDevice cudaSetDevice
#define gpuOccupancyBlocksPerSm(out, kernel, threads) \
  cudaOccupancyMaxActiveBlocksPerMultiprocessor((out), (kernel), (threads), 0)
#define KNLP_SHFL_XOR(value, lane_mask) __shfl_xor_sync(0xffffffffu, (value), (lane_mask))
#define KNLP_LAUNCH(kernel, grid, block, stream, ...) \
  kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__)
#endif

#define KNLP_HD __host__ __device__ __forceinline__

namespace knlp {

// The largest finite e4m3fn value; V is scaled so its largest |value| maps here.
constexpr float kFp8E4m3Max = 448.0f;

KNLP_HD uint32_t float_bits(float f) {
  union {
    float f;
    uint32_t u;
  } x;
  x.f = f;
  return x.u;
}

KNLP_HD float bits_float(uint32_t u) {
  union {
    float f;
    uint32_t u;
  } x;
  x.u = u;
  return x.f;
}

// bf16 (raw bits) -> float: exact.
KNLP_HD float bf16_to_float(uint16_t b) { return bits_float(static_cast<uint32_t>(b) << 16); }

// float -> bf16 (raw bits), round to nearest even; NaN stays a quiet NaN.
KNLP_HD uint16_t float_to_bf16(float f) {
  uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// float -> e4m3fn bits, round to nearest even, as torch's conversion to
// float8_e4m3fn does: magnitudes of 448 and above (infinities included)
// saturate to 448, NaN stays NaN (0x7f with the sign).
KNLP_HD uint8_t float_to_e4m3(float f) {
  uint32_t u = float_bits(f);
  const uint32_t sign = u & 0x80000000u;
  u ^= sign;
  uint32_t code;
  if (u > 0x7f800000u) {  // NaN
    code = 0x7fu;
  } else if (u >= 0x43e00000u) {  // 448.0f and above, inf: saturate
    code = 0x7eu;
  } else if (u < (121u << 23)) {
    // Below 2^-6, the smallest normal e4m3: the result is subnormal (a
    // multiple of 2^-9). Adding 2^14 moves the value where one float ulp is
    // 2^-9, so the float adder does the round-to-nearest-even for us.
    const float shifted = bits_float(u) + bits_float(141u << 23);
    code = float_bits(shifted) - (141u << 23);
  } else {
    // Normal: rebias the exponent (127 -> 7) and round the 23-bit mantissa to
    // 3 bits, nearest even (add half an ulp minus one, plus the kept lsb).
    const uint32_t odd = (u >> 20) & 1u;
    u += (static_cast<uint32_t>(7 - 127) << 23) + 0x7ffffu + odd;
    code = u >> 20;
  }
  return static_cast<uint8_t>(code | (sign >> 24));
}

// e4m3fn bits -> float (exact; NaN codes decode to NaN).
KNLP_HD float e4m3_to_float(uint8_t b) {
  const uint32_t sign = static_cast<uint32_t>(b & 0x80u) << 24;
  const uint32_t mag = b & 0x7fu;
  if (mag == 0x7fu) return bits_float(sign | 0x7fc00000u);
  const uint32_t exp = mag >> 3, man = mag & 7u;
  if (exp == 0) {  // subnormal: man * 2^-9
    return bits_float(sign | float_bits(static_cast<float>(man) * (1.0f / 512.0f)));
  }
  return bits_float(sign | ((exp + 120u) << 23) | (man << 20));
}

// Asynchronous 16- and 4-byte copies from global to shared memory, and the
// pipeline's waits. On sm_80 and newer they are cp.async (the load bypasses
// registers and the thread goes on; async_wait_all_but_one() waits for every
// committed group but the newest). Elsewhere (older NVIDIA, HIP, the CPU
// emulation) they are plain 16- and 4-byte loads and stores, complete when
// issued, and the waits do nothing.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
__device__ __forceinline__ void copy16_async(void* smem, const void* gmem) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem));
}
__device__ __forceinline__ void copy4_async(void* smem, const void* gmem) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(s), "l"(gmem));
}
__device__ __forceinline__ void async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void async_wait_all_but_one() {
  asm volatile("cp.async.wait_group 1;\n" ::);
}
#else
__device__ __forceinline__ void copy16_async(void* smem, const void* gmem) {
  *static_cast<uint4*>(smem) = *static_cast<const uint4*>(gmem);
}
__device__ __forceinline__ void copy4_async(void* smem, const void* gmem) {
  *static_cast<float*>(smem) = *static_cast<const float*>(gmem);
}
__device__ __forceinline__ void async_commit() {}
__device__ __forceinline__ void async_wait_all_but_one() {}
#endif

// A load that skips the (incoherent) L1: for data other blocks wrote before a fence.
#if defined(KNLP_CPU_EMULATION)
__device__ __forceinline__ float load_l2(const float* p) { return *p; }
#elif defined(__HIPCC__)
__device__ __forceinline__ float load_l2(const float* p) { return *static_cast<const volatile float*>(p); }
#else
__device__ __forceinline__ float load_l2(const float* p) { return __ldcg(p); }
#endif

// Four e4m3 codes packed in a uint32 -> four floats, each times 2^-8.
//
// The hot loop's decoder: each code moves into the bit position of an IEEE
// half (same sign, exponent field shifted by 7 bits), which is exactly
// value * 2^-8 because half's exponent bias is 15 instead of 7; subnormal
// codes become subnormal halves, which the hardware converts exactly. The
// 2^8 goes into the per-token scale. Codes 0 and 2 are moved as one pair of
// halves, 1 and 3 as another. NaN codes are not handled (the writer never
// produces them).
__device__ __forceinline__ void e4m3x4_to_float_div256(uint32_t x, float out[4]) {
  const uint32_t even = x & 0x00ff00ffu;         // codes 0 and 2
  const uint32_t odd = (x >> 8) & 0x00ff00ffu;   // codes 1 and 3
  const uint32_t h02 = ((even << 7) & 0x3f803f80u) | ((even << 8) & 0x80008000u);
  const uint32_t h13 = ((odd << 7) & 0x3f803f80u) | ((odd << 8) & 0x80008000u);
  out[0] = __half2float(__ushort_as_half(static_cast<unsigned short>(h02 & 0xffffu)));
  out[1] = __half2float(__ushort_as_half(static_cast<unsigned short>(h13 & 0xffffu)));
  out[2] = __half2float(__ushort_as_half(static_cast<unsigned short>(h02 >> 16)));
  out[3] = __half2float(__ushort_as_half(static_cast<unsigned short>(h13 >> 16)));
}

}  // namespace knlp
