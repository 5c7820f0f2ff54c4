// K16/V8 decode attention and the KV writer, one source for CUDA and HIP.
//
// The cache holds K as bf16 and V as fp8 e4m3 with one float scale per
// (token, kv head): v = scale * e4m3(v / scale), scale = max|v| / 448. Decode
// attention reads one query token per sequence and the whole cache of that
// sequence; with grouped-query attention (GQA) the q heads kv_head*G .. +G-1
// share kv head kv_head, so one thread block serves all G of them and every
// cache byte is read once.
//
// Layouts. Both are "NHD": token-major, then kv head, then head_dim.
//   contiguous: k_cache [B, T_max, H_kv, D], v_cache [B, T_max, H_kv, D],
//               v_scale [B, T_max, H_kv]; sequence b owns slab b.
//   paged:      k_cache [P, page_size, H_kv, D] (P pages), same for v and the
//               scales; block_table [B, max_pages] lists sequence b's pages.
// The contiguous layout is the paged one with page_size = T_max and
// block_table[b] = {b}, which is how the kernel treats it.
//
// Algorithm (split-K "flash decoding"): the sequence is cut into chunks; block
// (split, kv_head, b) computes, for its G q heads, the chunk's scores
// q.k * softmax_scale into shared memory (pass 1, reads K once), their max m
// and sum l of 2^(s - m), then sum_t p_t * scale_t * v_t (pass 2, reads V
// once), and writes the unnormalised partial output with m and l. A second
// kernel combines the chunks: o = sum_s 2^(m_s - M) o_s / sum_s 2^(m_s - M) l_s.
//
// Python reaches this through a plain C ABI (the extern "C" block at the end)
// with raw device pointers and a stream, so the library links no torch.

#include <float.h>
#include <stdarg.h>
#include <stdio.h>

#include "kernels/gpu_compat.h"

namespace knlp {
namespace {

constexpr int kThreads = 256;   // threads per block
constexpr int kSlice = 32;      // reduction slice: a warp (CUDA, wave32) or half a wave64
constexpr int kSlices = kThreads / kSlice;
constexpr int kMaxChunk = 512;  // tokens per block at most (scores live in shared memory)
constexpr int kUnroll = 4;      // token rows in flight per thread
constexpr int kMaxGroup = 8;    // q heads per kv head at most
constexpr float kLog2e = 1.4426950408889634f;

// Per-thread error text for the C ABI.
thread_local char g_error[512] = "";

int set_error(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_error, sizeof(g_error), fmt, ap);
  va_end(ap);
  return 1;
}

struct DecodeArgs {
  const uint16_t* q;        // [B, Hq, D] bf16
  const uint16_t* k_cache;  // [pages, page_size, Hkv, D] bf16
  const uint8_t* v_cache;   // [pages, page_size, Hkv, D] e4m3
  const float* v_scale;     // [pages, page_size, Hkv]
  const int32_t* seq_lens;  // [B]
  const int32_t* block_table;  // [B, max_pages] or null (contiguous)
  int q_heads, kv_heads, page_size, max_pages, num_splits, chunk;
  float scale_log2;  // softmax_scale * log2(e)
  float* part_o;     // [B, Hq, S, D]
  float* part_ml;    // [B, Hq, S, 2]
};

__device__ __forceinline__ int64_t row_index(const DecodeArgs& a, int b, int t, int kv_head) {
  int64_t page;
  int slot;
  if (a.block_table != nullptr) {
    page = a.block_table[static_cast<int64_t>(b) * a.max_pages + t / a.page_size];
    slot = t % a.page_size;
  } else {
    page = b;
    slot = t;
  }
  return (page * a.page_size + slot) * a.kv_heads + kv_head;
}

// One block: one sequence b, one kv head, one chunk of tokens, all G q heads.
// Each group of D/8 threads owns one token row at a time; each thread owns 8
// consecutive dims (16 bytes of K, 8 bytes of V).
template <int D, int GMAX>
__global__ void __launch_bounds__(kThreads) decode_split_kernel(DecodeArgs a) {
  constexpr int kTpt = D / 8;             // threads per token row
  constexpr int kRows = kThreads / kTpt;  // rows in flight per block step
  constexpr int kRed = kSlices * GMAX * D > GMAX * kMaxChunk ? kSlices * GMAX * D : GMAX * kMaxChunk;
  __shared__ float smem[kRed];  // scores, then the cross-slice reduction
  __shared__ float s_m[GMAX], s_l[GMAX];

  const int split = blockIdx.x, kv_head = blockIdx.y, b = blockIdx.z;
  const int group = a.q_heads / a.kv_heads;
  const int tid = threadIdx.x;
  const int row = tid / kTpt, lane_in_row = tid % kTpt;
  const int seq_len = a.seq_lens[b];
  const int start = split * a.chunk;
  const int end = min(start + a.chunk, seq_len);
  const int64_t part = (static_cast<int64_t>(b) * a.q_heads + kv_head * group) * a.num_splits + split;

  if (start >= end) {  // this chunk lies past the sequence: contributes nothing
    if (tid < group) {
      a.part_ml[(part + static_cast<int64_t>(tid) * a.num_splits) * 2 + 0] = -FLT_MAX;
      a.part_ml[(part + static_cast<int64_t>(tid) * a.num_splits) * 2 + 1] = 0.0f;
    }
    return;
  }
  const int n = end - start;

  static_assert(GMAX <= kTpt, "the score reduce-scatter needs GMAX <= threads per row");
  // q for the group's heads, this thread's 8 dims, pre-scaled so exp2 works.
  float q[GMAX][8];
#pragma unroll
  for (int h = 0; h < GMAX; ++h) {
    if (h < group) {
      const uint4 raw = *reinterpret_cast<const uint4*>(
          a.q + ((static_cast<int64_t>(b) * a.q_heads + kv_head * group + h) * D + lane_in_row * 8));
      const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        q[h][2 * i] = bf16_to_float(static_cast<uint16_t>(w[i] & 0xffffu)) * a.scale_log2;
        q[h][2 * i + 1] = bf16_to_float(static_cast<uint16_t>(w[i] >> 16)) * a.scale_log2;
      }
    } else {
#pragma unroll
      for (int i = 0; i < 8; ++i) q[h][i] = 0.0f;
    }
  }

  // Pass 1: scores of every token in the chunk (K read once).
  for (int base = 0; base < n; base += kRows * kUnroll) {
    uint4 kraw[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int j = base + u * kRows + row;
      if (j < n) {
        const int64_t r = row_index(a, b, start + j, kv_head);
        kraw[u] = *reinterpret_cast<const uint4*>(a.k_cache + r * D + lane_in_row * 8);
      } else {
        kraw[u] = make_uint4(0, 0, 0, 0);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int j = base + u * kRows + row;
      const uint32_t w[4] = {kraw[u].x, kraw[u].y, kraw[u].z, kraw[u].w};
      float k[8];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        k[2 * i] = bf16_to_float(static_cast<uint16_t>(w[i] & 0xffffu));
        k[2 * i + 1] = bf16_to_float(static_cast<uint16_t>(w[i] >> 16));
      }
      float s[GMAX];
#pragma unroll
      for (int h = 0; h < GMAX; ++h) {
        s[h] = 0.0f;
        if (h < group) {
#pragma unroll
          for (int i = 0; i < 8; ++i) s[h] = fmaf(q[h][i], k[i], s[h]);
        }
      }
      // Sum each head's partial over the row's threads. A reduce-scatter:
      // at each step a thread keeps half of its heads and trades the other
      // half with its partner, so G heads cost G + G/2 + ... shuffles
      // instead of G * log2(threads per row).
      int head = 0;
#pragma unroll
      for (int off = kTpt / 2, cnt = GMAX; off > 0; off /= 2) {
        if (cnt > 1) {
          const bool upper = (lane_in_row & off) != 0;
#pragma unroll
          for (int i = 0; i < cnt / 2; ++i) {
            const float send = upper ? s[i] : s[i + cnt / 2];
            const float keep = upper ? s[i + cnt / 2] : s[i];
            s[i] = keep + KNLP_SHFL_XOR(send, off);
          }
          head += upper ? cnt / 2 : 0;
          cnt /= 2;
        } else {
          s[0] += KNLP_SHFL_XOR(s[0], off);
        }
      }
      // Threads whose remaining low lane bits are zero hold one full score.
      constexpr int kOwnerMask = kTpt / GMAX - 1;
      if ((lane_in_row & kOwnerMask) == 0 && head < group && j < n) smem[j * GMAX + head] = s[0];
    }
  }
  __syncthreads();

  // Softmax statistics: slice h (32 threads) handles q head h.
  {
    const int slice = tid / kSlice, lane = tid % kSlice;
    if (slice < group) {
      float* s = smem + slice;  // scores are stored [token][head]
      float m = -FLT_MAX;
      for (int j = lane; j < n; j += kSlice) m = fmaxf(m, s[j * GMAX]);
#pragma unroll
      for (int off = kSlice / 2; off > 0; off /= 2) m = fmaxf(m, KNLP_SHFL_XOR(m, off));
      float l = 0.0f;
      for (int j = lane; j < n; j += kSlice) {
        const float p = exp2f(s[j * GMAX] - m);
        s[j * GMAX] = p;
        l += p;
      }
#pragma unroll
      for (int off = kSlice / 2; off > 0; off /= 2) l += KNLP_SHFL_XOR(l, off);
      if (lane == 0) {
        s_m[slice] = m;
        s_l[slice] = l;
      }
    }
  }
  __syncthreads();

  // Pass 2: sum_t p_t * scale_t * v_t (V read once).
  float acc[GMAX][8];
#pragma unroll
  for (int h = 0; h < GMAX; ++h)
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[h][i] = 0.0f;

  for (int base = 0; base < n; base += kRows * kUnroll) {
    uint2 vraw[kUnroll];
    float vs[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int j = base + u * kRows + row;
      if (j < n) {
        const int64_t r = row_index(a, b, start + j, kv_head);
        vraw[u] = *reinterpret_cast<const uint2*>(a.v_cache + r * D + lane_in_row * 8);
        vs[u] = a.v_scale[r] * 256.0f;  // the decoder below yields value / 256
      } else {
        vraw[u] = make_uint2(0, 0);
        vs[u] = 0.0f;
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int j = base + u * kRows + row;
      if (j < n) {
        float v[8];
        e4m3x4_to_float_div256(vraw[u].x, v);
        e4m3x4_to_float_div256(vraw[u].y, v + 4);
#pragma unroll
        for (int h = 0; h < GMAX; ++h) {
          if (h < group) {
            const float w = smem[j * GMAX + h] * vs[u];
#pragma unroll
            for (int i = 0; i < 8; ++i) acc[h][i] = fmaf(w, v[i], acc[h][i]);
          }
        }
      }
    }
  }

  // Reduce the rows of each 32-thread slice with shuffles, then the slices
  // through shared memory in a fixed order (deterministic).
#pragma unroll
  for (int h = 0; h < GMAX; ++h)
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
      for (int off = kTpt; off < kSlice; off *= 2) acc[h][i] += KNLP_SHFL_XOR(acc[h][i], off);
  __syncthreads();  // the scores are no longer needed
  const int slice = tid / kSlice;
  if (tid % kSlice < kTpt) {
#pragma unroll
    for (int h = 0; h < GMAX; ++h)
      if (h < group)
#pragma unroll
        for (int i = 0; i < 8; ++i) smem[(slice * GMAX + h) * D + lane_in_row * 8 + i] = acc[h][i];
  }
  __syncthreads();
  for (int idx = tid; idx < group * D; idx += kThreads) {
    const int h = idx / D, d = idx % D;
    float o = 0.0f;
#pragma unroll
    for (int s = 0; s < kSlices; ++s) o += smem[(s * GMAX + h) * D + d];
    a.part_o[(part + static_cast<int64_t>(h) * a.num_splits) * D + d] = o;
  }
  if (tid < group) {
    a.part_ml[(part + static_cast<int64_t>(tid) * a.num_splits) * 2 + 0] = s_m[tid];
    a.part_ml[(part + static_cast<int64_t>(tid) * a.num_splits) * 2 + 1] = s_l[tid];
  }
}

// One block per (b, q head): merge the splits and write bf16.
template <int D>
__global__ void __launch_bounds__(D) decode_combine_kernel(const float* part_o, const float* part_ml,
                                                            int num_splits, uint16_t* out) {
  const int64_t bh = blockIdx.x;
  const float* ml = part_ml + bh * num_splits * 2;
  float m_max = -FLT_MAX;
  for (int s = 0; s < num_splits; ++s)
    if (ml[2 * s + 1] > 0.0f) m_max = fmaxf(m_max, ml[2 * s]);
  float l_sum = 0.0f, o = 0.0f;
  for (int s = 0; s < num_splits; ++s) {
    const float l = ml[2 * s + 1];
    if (l > 0.0f) {
      const float w = exp2f(ml[2 * s] - m_max);
      l_sum = fmaf(w, l, l_sum);
      o = fmaf(w, part_o[(bh * num_splits + s) * D + threadIdx.x], o);
    }
  }
  out[bh * D + threadIdx.x] = float_to_bf16(l_sum > 0.0f ? o / l_sum : 0.0f);
}

// One block per (token, kv head): K copied bit for bit, V scaled to fp8.
__global__ void __launch_bounds__(128) kv_write_kernel(const uint16_t* k, const uint16_t* v,
                                                       const int64_t* slot_mapping, int kv_heads,
                                                       int head_dim, uint16_t* k_cache,
                                                       uint8_t* v_cache, float* v_scale) {
  __shared__ float s_amax[128 / kSlice];
  const int64_t token = blockIdx.x;
  const int head = blockIdx.y;
  const int64_t slot = slot_mapping[token];
  if (slot < 0) return;  // padding token: not cached
  const int64_t src = (token * kv_heads + head) * head_dim;
  const int64_t dst = (slot * kv_heads + head) * head_dim;
  float amax = 0.0f;
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    k_cache[dst + d] = k[src + d];
    amax = fmaxf(amax, fabsf(bf16_to_float(v[src + d])));
  }
#pragma unroll
  for (int off = kSlice / 2; off > 0; off /= 2) amax = fmaxf(amax, KNLP_SHFL_XOR(amax, off));
  if (threadIdx.x % kSlice == 0) s_amax[threadIdx.x / kSlice] = amax;
  __syncthreads();
  amax = s_amax[0];
  for (int s = 1; s < static_cast<int>(blockDim.x) / kSlice; ++s) amax = fmaxf(amax, s_amax[s]);
  const float scale = amax > 0.0f ? amax / kFp8E4m3Max : 1.0f;
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x)
    v_cache[dst + d] = float_to_e4m3(bf16_to_float(v[src + d]) / scale);
  if (threadIdx.x == 0) v_scale[slot * kv_heads + head] = scale;
}

template <int D, int GMAX>
void launch_split(const DecodeArgs& a, int batch, gpuStream_t stream) {
  dim3 grid(a.num_splits, a.kv_heads, batch);
  auto kernel = decode_split_kernel<D, GMAX>;
  KNLP_LAUNCH(kernel, grid, kThreads, stream, a);
}

template <int D>
int launch_decode(const DecodeArgs& a, int batch, uint16_t* out, gpuStream_t stream) {
  const int group = a.q_heads / a.kv_heads;
  if (group == 1) {
    launch_split<D, 1>(a, batch, stream);
  } else if (group <= 2) {
    launch_split<D, 2>(a, batch, stream);
  } else if (group <= 4) {
    launch_split<D, 4>(a, batch, stream);
  } else {
    launch_split<D, 8>(a, batch, stream);
  }
  auto combine = decode_combine_kernel<D>;
  KNLP_LAUNCH(combine, batch * a.q_heads, D, stream, a.part_o, a.part_ml, a.num_splits, out);
  return 0;
}

int check_launch(const char* what) {
  const gpuError_t err = gpuGetLastError();
  if (err != gpuSuccess) return set_error("%s: %s", what, gpuGetErrorString(err));
  return 0;
}

}  // namespace
}  // namespace knlp

extern "C" {

// "cuda" or "rocm": which compiler built this library.
const char* knlp_kernels_vendor() { return KNLP_VENDOR; }

// The message of the last failed call on this thread.
const char* knlp_last_error() { return knlp::g_error; }

// Chooses how decode splits the sequence: enough blocks to fill a device with
// `multiprocessors` multiprocessors (about two blocks each) without chunks
// over kMaxChunk tokens. A pure function, so the host can test it.
int knlp_decode_plan(int batch, int kv_heads, int max_seq_len, int multiprocessors,
                     int* num_splits, int* chunk) {
  using namespace knlp;
  if (batch < 1 || kv_heads < 1 || max_seq_len < 1 || multiprocessors < 1)
    return set_error("decode plan: batch=%d kv_heads=%d max_seq_len=%d multiprocessors=%d must "
                     "all be >= 1",
                     batch, kv_heads, max_seq_len, multiprocessors);
  const int want = (2 * multiprocessors + batch * kv_heads - 1) / (batch * kv_heads);
  int c = (max_seq_len + want - 1) / want;
  c = (c + 63) / 64 * 64;
  c = c > kMaxChunk ? kMaxChunk : c;
  *chunk = c;
  *num_splits = (max_seq_len + c - 1) / c;
  return 0;
}

int knlp_decode_attention(const void* q, const void* k_cache, const void* v_cache,
                          const float* v_scale, const int32_t* seq_lens, const int32_t* block_table,
                          int batch, int q_heads, int kv_heads, int head_dim, int page_size,
                          int max_pages, int num_splits, int chunk, float softmax_scale,
                          float* workspace_o, float* workspace_ml, void* out, int device,
                          void* stream) {
  using namespace knlp;
  const gpuError_t set = gpuSetDevice(device);
  if (set != gpuSuccess)
    return set_error("decode: selecting device %d: %s", device, gpuGetErrorString(set));
  if (kv_heads < 1 || q_heads % kv_heads != 0 || q_heads / kv_heads > kMaxGroup)
    return set_error("decode: q_heads=%d kv_heads=%d; q_heads must be a multiple of kv_heads with "
                     "at most %d q heads per kv head",
                     q_heads, kv_heads, kMaxGroup);
  if (chunk < 1 || chunk > kMaxChunk)
    return set_error("decode: chunk=%d must be in 1..%d (use knlp_decode_plan)", chunk, kMaxChunk);
  DecodeArgs a;
  a.q = static_cast<const uint16_t*>(q);
  a.k_cache = static_cast<const uint16_t*>(k_cache);
  a.v_cache = static_cast<const uint8_t*>(v_cache);
  a.v_scale = v_scale;
  a.seq_lens = seq_lens;
  a.block_table = block_table;
  a.q_heads = q_heads;
  a.kv_heads = kv_heads;
  a.page_size = page_size;
  a.max_pages = max_pages;
  a.num_splits = num_splits;
  a.chunk = chunk;
  a.scale_log2 = softmax_scale * kLog2e;
  a.part_o = workspace_o;
  a.part_ml = workspace_ml;
  gpuStream_t s = static_cast<gpuStream_t>(stream);
  uint16_t* o = static_cast<uint16_t*>(out);
  switch (head_dim) {
    case 64:
      launch_decode<64>(a, batch, o, s);
      break;
    case 128:
      launch_decode<128>(a, batch, o, s);
      break;
    default:
      return set_error("decode: head_dim=%d is not supported; accepted: 64, 128", head_dim);
  }
  return check_launch("decode attention launch");
}

int knlp_kv_write(const void* k, const void* v, const int64_t* slot_mapping, int num_tokens,
                  int kv_heads, int head_dim, void* k_cache, void* v_cache, float* v_scale,
                  int device, void* stream) {
  using namespace knlp;
  const gpuError_t set = gpuSetDevice(device);
  if (set != gpuSuccess)
    return set_error("kv write: selecting device %d: %s", device, gpuGetErrorString(set));
  if (head_dim < 1 || head_dim > 1024)
    return set_error("kv write: head_dim=%d must be in 1..1024", head_dim);
  if (num_tokens == 0) return 0;
  dim3 grid(num_tokens, kv_heads);
  auto kernel = kv_write_kernel;
  KNLP_LAUNCH(kernel, grid, 128, static_cast<gpuStream_t>(stream), static_cast<const uint16_t*>(k),
              static_cast<const uint16_t*>(v), slot_mapping, kv_heads, head_dim,
              static_cast<uint16_t*>(k_cache), static_cast<uint8_t*>(v_cache), v_scale);
  return check_launch("kv write launch");
}

// The fp8 codec on the host, for testing the shared header without a GPU.
void knlp_fp8_e4m3_encode_host(const float* x, uint8_t* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = knlp::float_to_e4m3(x[i]);
}

void knlp_fp8_e4m3_decode_host(const uint8_t* x, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = knlp::e4m3_to_float(x[i]);
}

void knlp_bf16_round_host(const float* x, uint16_t* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = knlp::float_to_bf16(x[i]);
}

}  // extern "C"
