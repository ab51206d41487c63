// The sLSTM CUDA kernels' launch shape: batch tile, where R lives, and the shared memory each
// variant needs. Read by the kernels and by the entry points that size their launches.
#pragma once

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

}  // namespace xlstm
