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
// Algorithm (split-K "flash decoding", one pass): block (split, kv_head, b)
// walks its chunk of the sequence in tiles of kTile tokens. A tile's row
// offsets (page-table lookup and division) are computed once, by one thread
// per token, into shared memory; then the tile's K, V and V scales are copied
// into shared memory with 16-byte copies (cp.async on sm_80 and newer, so the
// next tile loads while this one is computed: a two-stage pipeline; plain
// 16-byte loads elsewhere, HIP included). Each token row of the tile is
// handled by D/8 threads, 8 dims each; every row of threads keeps its own
// online softmax (running max m, sum l, unnormalised output) for its G heads,
// so no scores are stored and a chunk has no size cap. At the end the rows
// are merged (shuffles, then shared memory in a fixed order) and the block
// either writes the output (one split) or its partial (m, l, o); the last
// block of a (sequence, kv head) to finish, found with an atomic counter,
// merges the partials: o = sum_s 2^(m_s - M) o_s / sum_s 2^(m_s - M) l_s.
//
// NaN in K (a NaN score) or V (a NaN code or scale) reaches the output, as in
// the reference: comparisons never let a NaN into m, so it stays in l and o.
//
// Python reaches this through a plain C ABI (the extern "C" block at the end)
// with raw device pointers and a stream, so the library links no torch.

#include <float.h>
#include <stdarg.h>
#include <stdio.h>

#include "kernels/gpu_compat.h"

namespace knlp {
namespace {

constexpr int kThreads = 128;    // threads per block
constexpr int kSlice = 32;       // reduction slice: a warp (CUDA, wave32) or half a wave64
constexpr int kSlices = kThreads / kSlice;
constexpr int kTileBytes = 4096;  // tokens per tile times head_dim
constexpr int kMaxGroup = 8;     // q heads per kv head at most
constexpr int kMinChunk = 128;   // tokens per split at least (merge cost vs parallelism)
constexpr int kMaxSplits = 256;  // splits per sequence at most (the merge's weight table)
constexpr int kChunkAlign = 64;  // chunks are whole tiles
constexpr float kLog2e = 1.4426950408889634f;

// Tokens per tile: 32 for head_dim 128, 64 for 64 (12 KiB of K and V a stage).
template <int D>
struct Tile {
  static constexpr int kTokens = kTileBytes / D;
};

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
  int q_heads, kv_heads, page_size, max_pages, max_seq_len, num_splits, chunk;
  float scale_log2;  // softmax_scale * log2(e)
  float* part_o;     // [B, Hq, S, D]   (num_splits > 1)
  float* part_ml;    // [B, Hq, S, 2]   (num_splits > 1)
  int* counters;     // [B, Hkv], zero on entry and left zero (num_splits > 1)
  uint16_t* out;     // [B, Hq, D] bf16
};

// Row of the cache (a [.., Hkv, D] slot times kv_heads plus the head) of token t.
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

// True when one of the four e4m3 codes in x is a NaN code (0x7f or 0xff).
__device__ __forceinline__ bool e4m3x4_has_nan(uint32_t x) {
  const uint32_t y = (x & 0x7f7f7f7fu) ^ 0x7f7f7f7fu;  // a zero byte where a code is NaN
  return ((y - 0x01010101u) & ~y & 0x80808080u) != 0;
}

// Marks the decoded values of NaN codes (0x7f, 0xff) among four as NaN.
__device__ __forceinline__ void e4m3x4_mark_nan(uint32_t x, float v[4]) {
#pragma unroll
  for (int i = 0; i < 4; ++i)
    if (((x >> (8 * i)) & 0x7fu) == 0x7fu) v[i] = NAN;
}

// Eight codes -> eight floats times 2^-8; NaN codes give NaN.
__device__ __forceinline__ void e4m3x8_to_float_div256(uint2 raw, float v[8]) {
  e4m3x4_to_float_div256(raw.x, v);
  e4m3x4_to_float_div256(raw.y, v + 4);
  if (e4m3x4_has_nan(raw.x) || e4m3x4_has_nan(raw.y)) {  // rare: a branch, not a select
    e4m3x4_mark_nan(raw.x, v);
    e4m3x4_mark_nan(raw.y, v + 4);
  }
}

// One tile's shared memory: K and V rows, V scales and the rows' offsets.
template <int D>
struct Stage {
  uint4 k[Tile<D>::kTokens * D * 2 / 16];
  uint4 v[Tile<D>::kTokens * D / 16];
  float scale[Tile<D>::kTokens];
  int64_t row[Tile<D>::kTokens];
};

// Offsets of tile tokens t0 .. t0 + kTile - 1 (once per token, one thread each).
template <int D>
__device__ __forceinline__ void tile_rows(const DecodeArgs& a, int b, int kv_head, int t0, int end,
                                          Stage<D>& st) {
  constexpr int kTile = Tile<D>::kTokens;
  const int tid = threadIdx.x;
  if (tid < kTile) st.row[tid] = t0 + tid < end ? row_index(a, b, t0 + tid, kv_head) : -1;
}

// Issues the copies of one tile into shared memory (16 bytes per copy).
template <int D>
__device__ __forceinline__ void tile_load(const DecodeArgs& a, Stage<D>& st) {
  constexpr int kTile = Tile<D>::kTokens;
  constexpr int kKParts = D * 2 / 16, kVParts = D / 16;  // 16-byte pieces per row
  static_assert(kTile * kVParts % kThreads == 0, "every thread copies the same number of pieces");
  const int tid = threadIdx.x;
#pragma unroll
  for (int i = 0; i < kTile * kKParts / kThreads; ++i) {
    const int c = tid + i * kThreads;
    const int64_t r = st.row[c / kKParts];
    if (r >= 0) copy16_async(&st.k[c], a.k_cache + r * D + (c % kKParts) * 8);
  }
#pragma unroll
  for (int i = 0; i < kTile * kVParts / kThreads; ++i) {
    const int c = tid + i * kThreads;
    const int64_t r = st.row[c / kVParts];
    if (r >= 0) copy16_async(&st.v[c], a.v_cache + r * D + (c % kVParts) * 16);
  }
  if (tid < kTile && st.row[tid] >= 0) copy4_async(&st.scale[tid], a.v_scale + st.row[tid]);
}

// One block: one sequence b, one kv head, one chunk of tokens, all G q heads.
// (`, 1`: with no minimum, ptxas capped group 7 at 168 registers and
// spilled; sass_test guards against local memory.)
template <int D, int G>
__global__ void __launch_bounds__(kThreads, 1) decode_kernel(DecodeArgs a) {
  constexpr int kTile = Tile<D>::kTokens;
  constexpr int kTpt = D / 8;             // threads per token row
  constexpr int kRows = kThreads / kTpt;  // rows of threads
  static_assert(kTile % kRows == 0, "a tile is whole steps of rows");
  static_assert(kSlices * G * D >= G * kMaxSplits, "the merge's weights fit the output buffer");
  __shared__ Stage<D> stage[2];
  __shared__ float s_o[kSlices * G * D];  // the slices' outputs, then the merge's weights
  __shared__ float s_m[kSlices * G], s_l[kSlices * G];
  __shared__ int s_last;

  const int split = blockIdx.x, kv_head = blockIdx.y, b = blockIdx.z;
  const int tid = threadIdx.x;
  const int row = tid / kTpt, lane_in_row = tid % kTpt;
  // seq_lens above max_seq_len are refused by the host; clamping keeps a
  // bypassed check from reading past the cache.
  const int seq_len = min(a.seq_lens[b], a.max_seq_len);
  const int start = split * a.chunk;
  const int end = min(start + a.chunk, seq_len);
  const int tiles = start < end ? (end - start + kTile - 1) / kTile : 0;
  const int64_t head0 = static_cast<int64_t>(b) * a.q_heads + kv_head * G;

  // q for the group's heads, this thread's 8 dims, pre-scaled so exp2 works.
  float q[G][8];
#pragma unroll
  for (int h = 0; h < G; ++h) {
    const uint4 raw = *reinterpret_cast<const uint4*>(a.q + (head0 + h) * D + lane_in_row * 8);
    const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      q[h][2 * i] = bf16_to_float(static_cast<uint16_t>(w[i] & 0xffffu)) * a.scale_log2;
      q[h][2 * i + 1] = bf16_to_float(static_cast<uint16_t>(w[i] >> 16)) * a.scale_log2;
    }
  }
  float m[G], l[G], acc[G][8];
#pragma unroll
  for (int h = 0; h < G; ++h) {
    m[h] = -FLT_MAX;
    l[h] = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[h][i] = 0.0f;
  }

  if (tiles > 0) {
    tile_rows<D>(a, b, kv_head, start, end, stage[0]);
    __syncthreads();
    tile_load<D>(a, stage[0]);
  }
  async_commit();
  for (int it = 0; it < tiles; ++it) {
    Stage<D>& st = stage[it & 1];
    const int t0 = start + it * kTile;
    if (it + 1 < tiles) {  // the next tile loads while this one is computed
      tile_rows<D>(a, b, kv_head, t0 + kTile, end, stage[(it + 1) & 1]);
      __syncthreads();
      tile_load<D>(a, stage[(it + 1) & 1]);
    }
    async_commit();
    async_wait_all_but_one();
    __syncthreads();
#pragma unroll
    for (int u = 0; u < kTile / kRows; ++u) {
      const int r = u * kRows + row;
      const bool valid = t0 + r < end;  // the same for the whole row of threads
      uint4 kraw = make_uint4(0, 0, 0, 0);
      if (valid) kraw = st.k[r * kTpt + lane_in_row];
      const uint32_t w[4] = {kraw.x, kraw.y, kraw.z, kraw.w};
      float k[8];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        k[2 * i] = bf16_to_float(static_cast<uint16_t>(w[i] & 0xffffu));
        k[2 * i + 1] = bf16_to_float(static_cast<uint16_t>(w[i] >> 16));
      }
      float s[G];
#pragma unroll
      for (int h = 0; h < G; ++h) {
        s[h] = 0.0f;
#pragma unroll
        for (int i = 0; i < 8; ++i) s[h] = fmaf(q[h][i], k[i], s[h]);
      }
      // Every thread of the row gets every head's full score (butterfly).
#pragma unroll
      for (int off = kTpt / 2; off > 0; off /= 2)
#pragma unroll
        for (int h = 0; h < G; ++h) s[h] += KNLP_SHFL_XOR(s[h], off);
      if (valid) {
        const uint2 vraw = reinterpret_cast<const uint2*>(st.v)[r * kTpt + lane_in_row];
        const float vs = st.scale[r] * 256.0f;  // the decoder yields value / 256
        float v[8];
        e4m3x8_to_float_div256(vraw, v);
#pragma unroll
        for (int h = 0; h < G; ++h) {
          if (s[h] > m[h]) {  // a new max: rescale what was summed so far
            const float corr = exp2f(m[h] - s[h]);
            l[h] *= corr;
#pragma unroll
            for (int i = 0; i < 8; ++i) acc[h][i] *= corr;
            m[h] = s[h];
          }
          const float p = exp2f(s[h] - m[h]);
          l[h] += p;
          const float wp = p * vs;
#pragma unroll
          for (int i = 0; i < 8; ++i) acc[h][i] = fmaf(wp, v[i], acc[h][i]);
        }
      }
    }
    __syncthreads();  // this stage is refilled two tiles on
  }

  // Merge the rows of each 32-thread slice (shuffles), then the slices
  // through shared memory in a fixed order (deterministic).
#pragma unroll
  for (int off = kTpt; off < kSlice; off *= 2) {
#pragma unroll
    for (int h = 0; h < G; ++h) {
      const float m_o = KNLP_SHFL_XOR(m[h], off);
      const float l_o = KNLP_SHFL_XOR(l[h], off);
      const float m_n = fmaxf(m[h], m_o);
      const float wa = exp2f(m[h] - m_n), wb = exp2f(m_o - m_n);
      l[h] = l[h] * wa + l_o * wb;
#pragma unroll
      for (int i = 0; i < 8; ++i) acc[h][i] = acc[h][i] * wa + KNLP_SHFL_XOR(acc[h][i], off) * wb;
      m[h] = m_n;
    }
  }
  const int slice = tid / kSlice;
  if (tid % kSlice < kTpt) {
#pragma unroll
    for (int h = 0; h < G; ++h) {
#pragma unroll
      for (int i = 0; i < 8; ++i) s_o[(slice * G + h) * D + lane_in_row * 8 + i] = acc[h][i];
      if (lane_in_row == 0) {
        s_m[slice * G + h] = m[h];
        s_l[slice * G + h] = l[h];
      }
    }
  }
  __syncthreads();
  const bool single = a.num_splits == 1;
  for (int idx = tid; idx < G * D; idx += kThreads) {
    const int h = idx / D, d = idx % D;
    float mx = -FLT_MAX;
#pragma unroll
    for (int sl = 0; sl < kSlices; ++sl) mx = fmaxf(mx, s_m[sl * G + h]);
    float o = 0.0f, lsum = 0.0f;
#pragma unroll
    for (int sl = 0; sl < kSlices; ++sl) {
      const float w = exp2f(s_m[sl * G + h] - mx);
      o = fmaf(w, s_o[(sl * G + h) * D + d], o);
      lsum = fmaf(w, s_l[sl * G + h], lsum);
    }
    if (single) {
      a.out[(head0 + h) * D + d] = float_to_bf16(lsum != 0.0f ? o / lsum : 0.0f);
    } else {
      const int64_t part = (head0 + h) * a.num_splits + split;
      a.part_o[part * D + d] = o;
      if (d == 0) {
        a.part_ml[part * 2] = mx;
        a.part_ml[part * 2 + 1] = lsum;
      }
    }
  }
  if (single) return;

  // The last block of this (sequence, kv head) merges every split.
  __threadfence();
  __syncthreads();
  if (tid == 0) {
    int* counter = a.counters + static_cast<int64_t>(b) * a.kv_heads + kv_head;
    s_last = atomicAdd(counter, 1) == a.num_splits - 1;
    if (s_last) *counter = 0;  // ready for the next call
  }
  __syncthreads();
  if (!s_last) return;
  __threadfence();
  const float* part_ml = a.part_ml;  // written by other blocks: read through L2 (load_l2)
  const float* part_o = a.part_o;
  float* weight = s_o;  // [G][num_splits]: 2^(m_s - M), 0 for an empty split
  const int lane = tid % kSlice;
  for (int h = slice; h < G; h += kSlices) {  // one slice per head: max, weights, sum
    const int64_t base = (head0 + h) * a.num_splits;
    float mx = -FLT_MAX;
    for (int sp = lane; sp < a.num_splits; sp += kSlice)
      if (load_l2(part_ml + (base + sp) * 2 + 1) != 0.0f) mx = fmaxf(mx, load_l2(part_ml + (base + sp) * 2));
#pragma unroll
    for (int off = kSlice / 2; off > 0; off /= 2) mx = fmaxf(mx, KNLP_SHFL_XOR(mx, off));
    float lsum = 0.0f;
    for (int sp = lane; sp < a.num_splits; sp += kSlice) {
      const float ls = load_l2(part_ml + (base + sp) * 2 + 1);
      const float w = ls != 0.0f ? exp2f(load_l2(part_ml + (base + sp) * 2) - mx) : 0.0f;
      weight[h * a.num_splits + sp] = w;
      lsum = fmaf(w, ls, lsum);
    }
#pragma unroll
    for (int off = kSlice / 2; off > 0; off /= 2) lsum += KNLP_SHFL_XOR(lsum, off);
    if (lane == 0) s_l[h] = lsum;
  }
  __syncthreads();
  for (int idx = tid; idx < G * D; idx += kThreads) {
    const int h = idx / D, d = idx % D;
    const int64_t base = (head0 + h) * a.num_splits;
    float o = 0.0f;
    for (int sp = 0; sp < a.num_splits; ++sp) {
      const float w = weight[h * a.num_splits + sp];
      if (w != 0.0f) o = fmaf(w, load_l2(part_o + (base + sp) * D + d), o);
    }
    a.out[(head0 + h) * D + d] = float_to_bf16(s_l[h] != 0.0f ? o / s_l[h] : 0.0f);
  }
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

using DecodeKernel = void (*)(DecodeArgs);

// The kernel compiled for exactly this group size (no padded heads).
template <int D>
DecodeKernel pick_kernel(int group) {
  switch (group) {
    case 1:
      return decode_kernel<D, 1>;
    case 2:
      return decode_kernel<D, 2>;
    case 3:
      return decode_kernel<D, 3>;
    case 4:
      return decode_kernel<D, 4>;
    case 5:
      return decode_kernel<D, 5>;
    case 6:
      return decode_kernel<D, 6>;
    case 7:
      return decode_kernel<D, 7>;
    case 8:
      return decode_kernel<D, 8>;
    default:
      return nullptr;
  }
}

DecodeKernel find_kernel(int head_dim, int group) {
  if (head_dim == 64) return pick_kernel<64>(group);
  if (head_dim == 128) return pick_kernel<128>(group);
  return nullptr;
}

int check_launch(const char* what) {
  const gpuError_t err = gpuGetLastError();
  if (err != gpuSuccess) return set_error("%s: %s", what, gpuGetErrorString(err));
  return 0;
}

bool aligned(const void* p, uintptr_t n) { return reinterpret_cast<uintptr_t>(p) % n == 0; }

}  // namespace
}  // namespace knlp

extern "C" {

// "cuda" or "rocm": which compiler built this library.
const char* knlp_kernels_vendor() { return KNLP_VENDOR; }

// The message of the last failed call on this thread.
const char* knlp_last_error() { return knlp::g_error; }

// How many decode blocks of this shape one multiprocessor of `device` runs at once.
int knlp_decode_occupancy(int head_dim, int group, int device, int* blocks_per_sm) {
  using namespace knlp;
  const DecodeKernel kernel = find_kernel(head_dim, group);
  if (kernel == nullptr)
    return set_error("decode occupancy: head_dim=%d group=%d; accepted: head_dim 64 or 128, "
                     "group 1..%d",
                     head_dim, group, kMaxGroup);
  const gpuError_t set = gpuSetDevice(device);
  if (set != gpuSuccess)
    return set_error("decode occupancy: selecting device %d: %s", device, gpuGetErrorString(set));
  const gpuError_t err = gpuOccupancyBlocksPerSm(blocks_per_sm, kernel, kThreads);
  if (err != gpuSuccess) return set_error("decode occupancy: %s", gpuGetErrorString(err));
  return 0;
}

// Chooses how decode splits the sequence: none when batch * kv_heads blocks
// already fill every multiprocessor's resident slots (`blocks_per_sm`, from
// knlp_decode_occupancy); otherwise enough splits to fill them, with chunks
// of at least kMinChunk tokens and at most kMaxSplits splits, chunks a
// multiple of kChunkAlign. A pure function, so the host can test it.
int knlp_decode_plan(int batch, int kv_heads, int max_seq_len, int multiprocessors,
                     int blocks_per_sm, int* num_splits, int* chunk) {
  using namespace knlp;
  if (batch < 1 || kv_heads < 1 || max_seq_len < 1 || multiprocessors < 1 || blocks_per_sm < 1)
    return set_error("decode plan: batch=%d kv_heads=%d max_seq_len=%d multiprocessors=%d "
                     "blocks_per_sm=%d must all be >= 1",
                     batch, kv_heads, max_seq_len, multiprocessors, blocks_per_sm);
  const int64_t slots = static_cast<int64_t>(multiprocessors) * blocks_per_sm;
  const int64_t blocks = static_cast<int64_t>(batch) * kv_heads;
  int64_t want = blocks >= slots ? 1 : (slots + blocks - 1) / blocks;
  const int64_t most = (max_seq_len + kMinChunk - 1) / kMinChunk;
  want = want > most ? most : want;
  want = want > kMaxSplits ? kMaxSplits : want;
  int64_t c = (max_seq_len + want - 1) / want;
  c = (c + kChunkAlign - 1) / kChunkAlign * kChunkAlign;
  *chunk = static_cast<int>(c);
  *num_splits = static_cast<int>((max_seq_len + c - 1) / c);
  return 0;
}

int knlp_decode_attention(const void* q, const void* k_cache, const void* v_cache,
                          const float* v_scale, const int32_t* seq_lens, const int32_t* block_table,
                          int batch, int q_heads, int kv_heads, int head_dim, int page_size,
                          int max_pages, int max_seq_len, int num_splits, int chunk,
                          float softmax_scale, float* workspace_o, float* workspace_ml,
                          int* counters, void* out, int device, void* stream) {
  using namespace knlp;
  const gpuError_t set = gpuSetDevice(device);
  if (set != gpuSuccess)
    return set_error("decode: selecting device %d: %s", device, gpuGetErrorString(set));
  if (kv_heads < 1 || q_heads % kv_heads != 0 || q_heads / kv_heads > kMaxGroup)
    return set_error("decode: q_heads=%d kv_heads=%d; q_heads must be a multiple of kv_heads with "
                     "at most %d q heads per kv head",
                     q_heads, kv_heads, kMaxGroup);
  const DecodeKernel kernel = find_kernel(head_dim, q_heads / kv_heads);
  if (kernel == nullptr)
    return set_error("decode: head_dim=%d is not supported; accepted: 64, 128", head_dim);
  if (num_splits < 1 || chunk < 1 || static_cast<int64_t>(num_splits) * chunk < max_seq_len ||
      num_splits > kMaxSplits || chunk % kChunkAlign != 0)
    return set_error("decode: num_splits=%d chunk=%d do not cover max_seq_len=%d in at most %d "
                     "splits of a multiple of %d tokens (use knlp_decode_plan)",
                     num_splits, chunk, max_seq_len, kMaxSplits, kChunkAlign);
  if (num_splits > 1 && (workspace_o == nullptr || workspace_ml == nullptr || counters == nullptr))
    return set_error("decode: num_splits=%d needs the workspace and counters", num_splits);
  if (!aligned(q, 16) || !aligned(k_cache, 16) || !aligned(v_cache, 16) || !aligned(v_scale, 4))
    return set_error("decode: q %p, k_cache %p, v_cache %p must be 16-byte aligned and v_scale %p "
                     "4-byte aligned",
                     q, k_cache, v_cache, static_cast<const void*>(v_scale));
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
  a.max_seq_len = max_seq_len;
  a.num_splits = num_splits;
  a.chunk = chunk;
  a.scale_log2 = softmax_scale * kLog2e;
  a.part_o = workspace_o;
  a.part_ml = workspace_ml;
  a.counters = counters;
  a.out = static_cast<uint16_t*>(out);
  dim3 grid(num_splits, kv_heads, batch);
  KNLP_LAUNCH(kernel, grid, kThreads, static_cast<gpuStream_t>(stream), a);
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
