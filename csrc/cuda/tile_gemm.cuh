// Block-wide tile product on CUDA cores: acc (kTile x kTile, spread over the block in registers)
// += A · B over a given depth, operands fetched through element functors and staged in shared
// memory kDepth at a time. The functors give any layout, gate weighting or masking; bounds past
// the depth are handled here, bounds in the row and column directions by the functors.
#pragma once

#include "common/cuda_compat.h"

namespace xlstm {

template <typename Traits>
struct TileAcc {
  static constexpr int kMicro = Traits::kMicro, kSpread = Traits::kTile / Traits::kMicro;
  float v[kMicro][kMicro];

  // Thread (ty, tx) owns rows ty + kSpread·r and columns tx + kSpread·c: neighbouring threads read
  // neighbouring shared-memory words.
  __device__ __forceinline__ static int ty() { return static_cast<int>(threadIdx.x) / kSpread; }
  __device__ __forceinline__ static int tx() { return static_cast<int>(threadIdx.x) % kSpread; }
  __device__ __forceinline__ static int row(int r) { return ty() + kSpread * r; }
  __device__ __forceinline__ static int col(int c) { return tx() + kSpread * c; }

  __device__ __forceinline__ void fill(float x) {
    for (int r = 0; r < kMicro; ++r)
      for (int c = 0; c < kMicro; ++c) v[r][c] = x;
  }
  // fn(row, col, value&) for every element this thread owns.
  template <typename Fn>
  __device__ __forceinline__ void for_each(Fn fn) {
    for (int r = 0; r < kMicro; ++r)
      for (int c = 0; c < kMicro; ++c) fn(row(r), col(c), v[r][c]);
  }
};

// Floats of shared memory tile_gemm stages its operands in.
template <typename Traits>
constexpr int tile_gemm_stage_floats() {
  return 2 * Traits::kDepth * (Traits::kTile + 1);
}

// Which index of an operand is adjacent in memory, so that neighbouring threads fetch neighbours.
enum class Adjacent { kDepth, kOuter };

// acc[m][n] += Σ_{k<depth} a(m, k) · b(k, n). a(m, k) and b(k, n) must return 0 for an m or n
// outside the operand. Ends with a barrier; shared memory the functors read must be complete
// (behind a barrier) when it starts.
template <typename Traits, Adjacent kA, Adjacent kB, typename LoadA, typename LoadB>
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
      for (int r = 0; r < kMicro; ++r) ar[r] = As[kk * kLd + TileAcc<Traits>::row(r)];
      for (int c = 0; c < kMicro; ++c) br[c] = Bs[kk * kLd + TileAcc<Traits>::col(c)];
      for (int r = 0; r < kMicro; ++r)
        for (int c = 0; c < kMicro; ++c) acc.v[r][c] += ar[r] * br[c];
    }
    __syncthreads();
  }
}

// Per-row sums of a tile over the columns this thread owns, added into partial[tx][row0 + row]
// (kSpread x rows_ld): each (tx, row) has one owner, so the adds race with nothing. The sum over
// tx is sum_partials' job.
template <typename Traits>
__device__ __forceinline__ void add_row_partials(float* partial, int rows_ld, int row0, const TileAcc<Traits>& tile) {
  for (int r = 0; r < Traits::kMicro; ++r) {
    float s = 0.f;
    for (int c = 0; c < Traits::kMicro; ++c) s += tile.v[r][c];
    partial[TileAcc<Traits>::tx() * rows_ld + row0 + TileAcc<Traits>::row(r)] += s;
  }
}

// The same for column sums: partial[ty][col0 + col].
template <typename Traits>
__device__ __forceinline__ void add_col_partials(float* partial, int cols_ld, int col0, const TileAcc<Traits>& tile) {
  for (int c = 0; c < Traits::kMicro; ++c) {
    float s = 0.f;
    for (int r = 0; r < Traits::kMicro; ++r) s += tile.v[r][c];
    partial[TileAcc<Traits>::ty() * cols_ld + col0 + TileAcc<Traits>::col(c)] += s;
  }
}

// out[x] = Σ_p partial[p][x] for x < n, then zeroes partial for the next use. Call between barriers.
template <typename Traits>
__device__ __forceinline__ void sum_partials(float* partial, int ld, int n, float* out) {
  constexpr int kSpread = Traits::kTile / Traits::kMicro;
  for (int x = threadIdx.x; x < n; x += Traits::kThreads) {
    float s = 0.f;
    for (int p = 0; p < kSpread; ++p) {
      s += partial[p * ld + x];
      partial[p * ld + x] = 0.f;
    }
    out[x] = s;
  }
}

}  // namespace xlstm
