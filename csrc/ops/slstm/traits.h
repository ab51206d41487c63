// The sLSTM CUDA kernels' launch shape: batch tile, where R lives, and the shared memory each
// variant needs. Read by the kernels and by the entry points that size their launches.
#pragma once

#include <algorithm>
#include <cstdint>

#include "common/cuda_compat.h"

namespace xlstm {

constexpr int kSlstmBatchTile = 4;
constexpr int kSlstmGates = 4;  // i, f, z, o
// A block has a thread per gate column in the forward (kSlstmGates·DH) and per (tile row, unit) in
// the backward (kSlstmBatchTile·DH): one block shape serves both only while the two are equal.
static_assert(kSlstmBatchTile == kSlstmGates, "the sLSTM block shape assumes as many batch rows per tile as gates");
constexpr int kSlstmRegisterRows = 32;
// The split of R between registers and shared memory takes blocks of at most this many threads
// (heads of up to 128 units): the kernels then may use up to 128 registers a thread, which the
// backward's 32 rows of Rᵀ in registers need.
constexpr int kSlstmSplitMaxThreads = 512;

enum class SlstmRPlace { kShared, kRegistersAndShared, kGlobal };

// The kernels' __launch_bounds__, and the bound their launches carry (xlstm::LaunchBounds).
XLSTM_HOST_DEVICE constexpr unsigned slstm_max_threads(SlstmRPlace place) {
  return place == SlstmRPlace::kRegistersAndShared ? unsigned{kSlstmSplitMaxThreads} : 1024u;
}

// Rows of each thread's slice of R kept in registers.
XLSTM_HOST_DEVICE constexpr int slstm_register_rows(SlstmRPlace place) {
  return place == SlstmRPlace::kRegistersAndShared ? kSlstmRegisterRows : 0;
}

// Dynamic shared memory, in floats: the part of R (or Rᵀ) held there + per-tile buffers
// (forward: h, raw; backward: d_raw, dh, dc, dn and the per-gate partial sums of dh).
inline int64_t slstm_shared_r_floats(int64_t dh, SlstmRPlace place) {
  return place == SlstmRPlace::kGlobal ? 0 : 4 * dh * (dh - slstm_register_rows(place));
}
inline int64_t slstm_fwd_smem_floats(int64_t dh, SlstmRPlace place) {
  return slstm_shared_r_floats(dh, place) + kSlstmBatchTile * 5 * dh;
}
inline int64_t slstm_bwd_smem_floats(int64_t dh, SlstmRPlace place) {
  return slstm_shared_r_floats(dh, place) + kSlstmBatchTile * 11 * dh;
}

// The sLSTM across a thread-block cluster (sm_90): one cluster per (head, tile of
// kSlstmBatchTile rows); block `rank` owns `units` of the head's units with all four gates of each
// (block column c = gate·units + u is R's column gate·DH + rank·units + u), so that the cell stays
// in the block. Its `threads` threads split the product `k_split` ways: the forward's h R over the
// rows k of each column, the backward's R d_raw over the columns of each k. The first
// `shared_rows` rows k of the block's columns live in shared memory, the rest (where the slice
// does not fit) are read from L2.
struct SlstmClusterShape {
  int blocks, units, k_split, shared_rows, threads;
};
constexpr int kSlstmClusterMaxThreads = 512;
constexpr int kSlstmClusterMaxPortableBlocks = 8;
constexpr int kSlstmClusterMaxBlocks = 16;  // with the non-portable cluster size attribute
constexpr int kSlstmClusterMinTermsPerThread = 16;

// Shared memory, in floats: R's rows on chip, then forward: h[t-1] of the tile twice (by step
// parity: the peers write the next step's while this one is read) and the partial sums; backward:
// the step's d_raw, the partial sums, and the gradient reaching h through R from every block twice.
inline int64_t slstm_cluster_smem_floats(int64_t dh, const SlstmClusterShape& s, bool backward) {
  const int64_t columns = kSlstmGates * s.units, tile_h = kSlstmBatchTile * dh;
  const int64_t buffers = backward ? kSlstmBatchTile * columns + s.k_split * tile_h + 2 * tile_h
                                   : 2 * tile_h + s.k_split * kSlstmBatchTile * columns;
  return s.shared_rows * columns + buffers;
}

// The cluster for head size dh: the most blocks (a divisor of dh) of a portable cluster, or of a
// non-portable one where R's slice does not fit a portable cluster's shared memory; blocks = 1
// (no cluster) where dh has no divisor in [2, 8] that leaves a block at most 128 units.
inline SlstmClusterShape slstm_cluster_shape(int64_t dh, int64_t max_smem_bytes, bool backward) {
  const auto with_blocks = [&](int blocks) {
    SlstmClusterShape s{blocks, static_cast<int>(dh / blocks), 1, 0, 0};
    const int64_t columns = kSlstmGates * s.units;
    const int64_t split = backward ? std::min<int64_t>(kSlstmClusterMaxThreads / dh, columns / kSlstmClusterMinTermsPerThread)
                                   : std::min<int64_t>(kSlstmClusterMaxThreads / columns, dh / kSlstmClusterMinTermsPerThread);
    s.k_split = static_cast<int>(std::max<int64_t>(1, split));
    // Forward: a thread per (column, k part); backward: per (k, column part), looping past 512,
    // and at least one per (row, unit) for the cell.
    const int64_t threads = backward ? std::max(columns, std::min<int64_t>(kSlstmClusterMaxThreads, dh * s.k_split))
                                     : s.k_split * columns;
    s.threads = static_cast<int>((threads + 31) / 32 * 32);
    const int64_t free_floats =
        max_smem_bytes / static_cast<int64_t>(sizeof(float)) - slstm_cluster_smem_floats(dh, s, backward);
    s.shared_rows = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(dh, free_floats / columns)));
    return s;
  };
  const auto largest_divisor = [&](int limit) {
    for (int blocks = limit; blocks >= 2; --blocks)
      if (dh % blocks == 0 && kSlstmGates * dh / blocks <= kSlstmClusterMaxThreads) return blocks;
    return 1;
  };
  const int portable_blocks = largest_divisor(kSlstmClusterMaxPortableBlocks);
  if (portable_blocks == 1) return {1, static_cast<int>(dh), 1, 0, 0};
  const SlstmClusterShape portable = with_blocks(portable_blocks);
  if (portable.shared_rows == dh) return portable;
  const int wide = largest_divisor(kSlstmClusterMaxBlocks);
  return wide > portable.blocks ? with_blocks(wide) : portable;
}

}  // namespace xlstm
