// Block-wide tile product on tensor cores: the overload of tile_gemm (cuda/tile_gemm.cuh) for an
// MmaTileAcc, 16-bit operands T (bf16 or fp16) and float32 accumulation: acc (kTile x kTile) += A · B over a
// given depth, operands fetched through the same element functors, rounded to T and staged in shared
// memory kMmaDepth deep, then multiplied with ldmatrix + mma.sync m16n8k16 (cuda/mma.cuh).
//
// The block's warps split the tile kWarpRows x kWarpCols; each warp owns a kWarpM x kWarpN block of
// m16n8 accumulator fragments. An operand is staged with the index that is adjacent in global
// memory also adjacent in shared memory (so the staging stores are contiguous): depth-adjacent
// operands as [outer][depth] rows, read with ldmatrix; outer-adjacent ones as [depth][outer] rows,
// read with ldmatrix.trans. Rows are padded by 8 elements (16 bytes) against bank conflicts.
#pragma once

#include <cstdint>

#include "cuda/mma.cuh"
#include "cuda/tile_gemm.cuh"  // Adjacent, the partial sums

namespace xlstm {

template <typename Traits, typename T>
struct MmaTileAcc {  // the interface of TileAcc (cuda/tile_gemm.cuh)
  static constexpr int kTile = Traits::kTile, kWarpRows = 2, kWarpCols = Traits::kThreads / 32 / kWarpRows;
  static constexpr int kWarpM = kTile / kWarpRows, kWarpN = kTile / kWarpCols;
  static constexpr int kFragsM = kWarpM / 16, kFragsN = kWarpN / 8;
  static constexpr int kElems = 4 * kFragsM * kFragsN;
  // A row is shared by the 4 lanes of a fragment row group in each warp column, a column by the 8
  // groups of a fragment in each warp row.
  static constexpr int kSlots = 4 * kWarpCols;
  static_assert(kWarpRows * kWarpCols * 32 == Traits::kThreads && kSlots == 8 * kWarpRows,
                "warps split the tile evenly; rows and columns have as many owners");
  static_assert(kWarpM % 16 == 0 && kWarpN % 16 == 0, "whole m16 fragments, n8 fragments in pairs");
  // Element e = 4 (fm kFragsN + fn) + r: register r of fragment (fm, fn).
  float v[kElems];

  __device__ __forceinline__ static int lane() { return static_cast<int>(threadIdx.x) % 32; }
  __device__ __forceinline__ static int warp_row() { return static_cast<int>(threadIdx.x) / 32 / kWarpCols; }
  __device__ __forceinline__ static int warp_col() { return static_cast<int>(threadIdx.x) / 32 % kWarpCols; }
  __device__ __forceinline__ static int row(int e) {
    return warp_row() * kWarpM + e / (4 * kFragsN) * 16 + mma_c_row(lane(), e % 4);
  }
  __device__ __forceinline__ static int col(int e) {
    return warp_col() * kWarpN + e / 4 % kFragsN * 8 + mma_c_col(lane(), e % 4);
  }
  __device__ __forceinline__ static int row_slot() { return warp_col() * 4 + lane() % 4; }
  __device__ __forceinline__ static int col_slot() { return warp_row() * 8 + lane() / 4; }

  __device__ __forceinline__ void fill(float x) {
    for (int e = 0; e < kElems; ++e) v[e] = x;
  }
  template <typename Fn>
  __device__ __forceinline__ void for_each(Fn fn) {
    for (int e = 0; e < kElems; ++e) fn(row(e), col(e), v[e]);
  }
  __device__ __forceinline__ float (&fragment(int fm, int fn))[4] {
    return *reinterpret_cast<float(*)[4]>(v + 4 * (fm * kFragsN + fn));
  }
};

template <typename Traits>
struct MmaStaging {
  static constexpr int kDepth = 32, kTile = Traits::kTile;
  static constexpr int kLdDepth = kDepth + 8, kLdOuter = kTile + 8;  // rows of 80 and 144 bytes
  static constexpr int kOperandElems = kTile * kLdDepth > kDepth * kLdOuter ? kTile * kLdDepth : kDepth * kLdOuter;
  template <Adjacent kAdjacent>
  __device__ __forceinline__ static int index(int outer, int k) {
    return kAdjacent == Adjacent::kDepth ? outer * kLdDepth + k : k * kLdOuter + outer;
  }
};

// Floats of shared memory the tensor-core tile_gemm stages its operands in: A, B and the low part of
// a split operand.
template <typename Traits>
constexpr int tile_mma_stage_floats() {
  return 3 * MmaStaging<Traits>::kOperandElems * 2 / 4;
}

namespace tile_mma_detail {

// The A fragment of rows m0 .. m0 + 15, depth ks .. ks + 15: matrix i of the x4 load is the 8x8
// block (rows m0 + 8 (i % 2), depth ks + 8 (i / 2)), its rows addressed by lanes 8i .. 8i + 7.
template <typename Traits, Adjacent kAdjacent>
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const uint16_t* staged, int m0, int ks) {
  using S = MmaStaging<Traits>;
  const int lane = static_cast<int>(threadIdx.x) % 32, i = lane / 8, r = lane % 8;
  const int m = m0 + 8 * (i % 2), k = ks + 8 * (i / 2);
  if (kAdjacent == Adjacent::kDepth)
    ldmatrix<4, false>(a, staged + S::template index<kAdjacent>(m + r, k));
  else
    ldmatrix<4, true>(a, staged + S::template index<kAdjacent>(m, k + r));
}

// The B fragments of columns n0 .. n0 + 7 and n0 + 8 .. n0 + 15, depth ks .. ks + 15: registers
// {b[0], b[1]} and {b[2], b[3]}; matrix i is the block (columns n0 + 8 (i / 2), depth ks + 8 (i % 2)).
template <typename Traits, Adjacent kAdjacent>
__device__ __forceinline__ void load_b_pair(uint32_t (&b)[4], const uint16_t* staged, int n0, int ks) {
  using S = MmaStaging<Traits>;
  const int lane = static_cast<int>(threadIdx.x) % 32, i = lane / 8, r = lane % 8;
  const int n = n0 + 8 * (i / 2), k = ks + 8 * (i % 2);
  if (kAdjacent == Adjacent::kDepth)
    ldmatrix<4, false>(b, staged + S::template index<kAdjacent>(n + r, k));
  else
    ldmatrix<4, true>(b, staged + S::template index<kAdjacent>(n, k + r));
}

}  // namespace tile_mma_detail

// acc[m][n] += Σ_{k<depth} a(m, k) · b(k, n), the operands rounded to T; the operand kSplit names
// as a high and a low part (two products with the other operand). a(m, k) and b(k, n) must return 0
// for an m or n outside the operand. Ends with a barrier; shared memory the functors read must be
// complete (behind a barrier) when it starts.
template <Adjacent kA, Adjacent kB, SplitOperand kSplit = SplitOperand::kNone, typename Traits, typename T,
          typename LoadA, typename LoadB>
__device__ __forceinline__ void tile_gemm(MmaTileAcc<Traits, T>& acc, int depth, const LoadA& a, const LoadB& b,
                                         float* stage) {
  using S = MmaStaging<Traits>;
  using Acc = MmaTileAcc<Traits, T>;
  constexpr int kTile = Traits::kTile, kDepth = S::kDepth;
  uint16_t* As = reinterpret_cast<uint16_t*>(stage);
  uint16_t* Bs = As + S::kOperandElems;
  uint16_t* Low = Bs + S::kOperandElems;  // the split operand's low part
  for (int k0 = 0; k0 < depth; k0 += kDepth) {
    for (int e = threadIdx.x; e < kDepth * kTile; e += Traits::kThreads) {
      const int ka = kA == Adjacent::kDepth ? e % kDepth : e / kTile, ma = kA == Adjacent::kDepth ? e / kDepth : e % kTile;
      const int kb = kB == Adjacent::kDepth ? e % kDepth : e / kTile, nb = kB == Adjacent::kDepth ? e / kDepth : e % kTile;
      const float xa = k0 + ka < depth ? a(ma, k0 + ka) : 0.f, xb = k0 + kb < depth ? b(k0 + kb, nb) : 0.f;
      const int at = S::template index<kA>(ma, ka), bt = S::template index<kB>(nb, kb);
      if (kSplit == SplitOperand::kA)
        mma_operand_split<T>(xa, As[at], Low[at]);
      else
        As[at] = mma_operand_bits<T>(xa);
      if (kSplit == SplitOperand::kB)
        mma_operand_split<T>(xb, Bs[bt], Low[bt]);
      else
        Bs[bt] = mma_operand_bits<T>(xb);
    }
    __syncthreads();
    for (int ks = 0; ks < kDepth; ks += 16) {
      uint32_t af[Acc::kFragsM][4], bf[Acc::kFragsN / 2][4];
      for (int fm = 0; fm < Acc::kFragsM; ++fm)
        tile_mma_detail::load_a<Traits, kA>(af[fm], As, Acc::warp_row() * Acc::kWarpM + 16 * fm, ks);
      for (int pair = 0; pair < Acc::kFragsN / 2; ++pair)
        tile_mma_detail::load_b_pair<Traits, kB>(bf[pair], Bs, Acc::warp_col() * Acc::kWarpN + 16 * pair, ks);
      const auto multiply = [&](uint32_t (&a_frags)[Acc::kFragsM][4], uint32_t (&b_frags)[Acc::kFragsN / 2][4]) {
        for (int fm = 0; fm < Acc::kFragsM; ++fm)
          for (int fn = 0; fn < Acc::kFragsN; ++fn) {
            const uint32_t b_frag[2] = {b_frags[fn / 2][2 * (fn % 2)], b_frags[fn / 2][2 * (fn % 2) + 1]};
            mma_m16n8k16<T>(acc.fragment(fm, fn), a_frags[fm], b_frag);
          }
      };
      multiply(af, bf);
      if (kSplit == SplitOperand::kA) {
        for (int fm = 0; fm < Acc::kFragsM; ++fm)
          tile_mma_detail::load_a<Traits, kA>(af[fm], Low, Acc::warp_row() * Acc::kWarpM + 16 * fm, ks);
        multiply(af, bf);
      } else if (kSplit == SplitOperand::kB) {
        for (int pair = 0; pair < Acc::kFragsN / 2; ++pair)
          tile_mma_detail::load_b_pair<Traits, kB>(bf[pair], Low, Acc::warp_col() * Acc::kWarpN + 16 * pair, ks);
        multiply(af, bf);
      }
    }
    __syncthreads();
  }
}

}  // namespace xlstm
