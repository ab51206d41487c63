// Block-wide tile product on CUDA cores: acc (kTile x kTile, spread over the block in registers)
// += A · B over a given depth, operands fetched through element functors and staged in shared
// memory kDepth at a time. The functors give any layout, gate weighting or masking; bounds past
// the depth are handled here, bounds in the row and column directions by the functors.
#pragma once

#include "common/cuda_compat.h"

namespace xlstm {

// A tile accumulator (this one and MmaTileAcc, cuda/tile_mma.cuh) holds kElems elements per thread,
// element e at (row(e), col(e)); every row and every column is shared by kSlots threads, told apart
// by row_slot() and col_slot(), so that per-thread partial sums of rows or columns race with nothing.
template <typename Traits>
struct TileAcc {
  static constexpr int kMicro = Traits::kMicro, kSpread = Traits::kTile / Traits::kMicro;
  static constexpr int kElems = kMicro * kMicro, kSlots = kSpread;
  float v[kElems];

  // Thread (ty, tx) owns rows ty + kSpread·r and columns tx + kSpread·c: neighbouring threads read
  // neighbouring shared-memory words.
  __device__ __forceinline__ static int ty() { return static_cast<int>(threadIdx.x) / kSpread; }
  __device__ __forceinline__ static int tx() { return static_cast<int>(threadIdx.x) % kSpread; }
  __device__ __forceinline__ static int row(int e) { return ty() + kSpread * (e / kMicro); }
  __device__ __forceinline__ static int col(int e) { return tx() + kSpread * (e % kMicro); }
  __device__ __forceinline__ static int row_slot() { return tx(); }
  __device__ __forceinline__ static int col_slot() { return ty(); }

  __device__ __forceinline__ void fill(float x) {
    for (int e = 0; e < kElems; ++e) v[e] = x;
  }
  // fn(row, col, value&) for every element this thread owns.
  template <typename Fn>
  __device__ __forceinline__ void for_each(Fn fn) {
    for (int e = 0; e < kElems; ++e) fn(row(e), col(e), v[e]);
  }
};

// Floats of shared memory tile_gemm stages its operands in.
template <typename Traits>
constexpr int tile_gemm_stage_floats() {
  return 2 * Traits::kDepth * (Traits::kTile + 1);
}

// Which index of an operand is adjacent in memory, so that neighbouring threads fetch neighbours.
enum class Adjacent { kDepth, kOuter };

// Which operand, if any, a product rounding its operands to 16 bits (the tensor-core overload,
// cuda/tile_mma.cuh) takes as a high and a low 16-bit part: for float32 values (states, scaled
// inputs) whose rounding error would otherwise reach a result that cancels. The float32 product
// here is exact either way.
enum class SplitOperand { kNone, kA, kB };

// acc[m][n] += Σ_{k<depth} a(m, k) · b(k, n). a(m, k) and b(k, n) must return 0 for an m or n
// outside the operand. Ends with a barrier; shared memory the functors read must be complete
// (behind a barrier) when it starts.
template <Adjacent kA, Adjacent kB, SplitOperand kSplit = SplitOperand::kNone, typename Traits, typename LoadA,
          typename LoadB>
__device__ __forceinline__ void tile_gemm(TileAcc<Traits>& acc, int depth, const LoadA& a, const LoadB& b,
                                          float* stage) {
  constexpr int kTile = Traits::kTile, kDepth = Traits::kDepth, kLd = kTile + 1, kMicro = Traits::kMicro;
  float* As = stage;                // [kDepth][kLd]
  float* Bs = stage + kDepth * kLd;  // [kDepth][kLd]
  for (int k0 = 0; k0 < depth; k0 += kDepth) {
    for (int e = threadIdx.x; e < kDepth * kTile; e += Traits::kThreads) {
      const int ka = kA == Adjacent::kDepth ? e % kDepth : e / kTile, ma = kA == Adjacent::kDepth ? e / kDepth : e % kTile;
      const int kb = kB == Adjacent::kDepth ? e % kDepth : e / kTile, nb = kB == Adjacent::kDepth ? e / kDepth : e % kTile;
      As[ka * kLd + ma] = k0 + ka < depth ? a(ma, k0 + ka) : 0.f;
      Bs[kb * kLd + nb] = k0 + kb < depth ? b(k0 + kb, nb) : 0.f;
    }
    __syncthreads();
    for (int kk = 0; kk < kDepth; ++kk) {
      float ar[kMicro], br[kMicro];
      for (int r = 0; r < kMicro; ++r) ar[r] = As[kk * kLd + TileAcc<Traits>::row(r * kMicro)];
      for (int c = 0; c < kMicro; ++c) br[c] = Bs[kk * kLd + TileAcc<Traits>::col(c)];
      for (int r = 0; r < kMicro; ++r)
        for (int c = 0; c < kMicro; ++c) acc.v[r * kMicro + c] += ar[r] * br[c];
    }
    __syncthreads();
  }
}

// Per-row sums of a tile over the elements this thread owns, added into
// partial[row_slot][row0 + row] (Acc::kSlots x rows_ld): each (slot, row) has one owner, so the adds
// race with nothing. The sum over slots is sum_partials' job.
template <typename Acc>
__device__ __forceinline__ void add_row_partials(float* partial, int rows_ld, int row0, const Acc& tile) {
  for (int e = 0; e < Acc::kElems; ++e) partial[Acc::row_slot() * rows_ld + row0 + Acc::row(e)] += tile.v[e];
}

// The same for column sums: partial[col_slot][col0 + col].
template <typename Acc>
__device__ __forceinline__ void add_col_partials(float* partial, int cols_ld, int col0, const Acc& tile) {
  for (int e = 0; e < Acc::kElems; ++e) partial[Acc::col_slot() * cols_ld + col0 + Acc::col(e)] += tile.v[e];
}

// out[x] = Σ_p partial[p][x] for x < n, then zeroes partial for the next use. Call between barriers.
template <typename Acc>
__device__ __forceinline__ void sum_partials(float* partial, int ld, int n, float* out) {
  for (int x = threadIdx.x; x < n; x += blockDim.x) {
    float s = 0.f;
    for (int p = 0; p < Acc::kSlots; ++p) {
      s += partial[p * ld + x];
      partial[p * ld + x] = 0.f;
    }
    out[x] = s;
  }
}

}  // namespace xlstm
