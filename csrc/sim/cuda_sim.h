// Host emulation of the CUDA execution model, so that g++ can compile and run the project's
// unchanged .cu sources on the CPU (built as xlstm_cuda._sim, tested in CI).
//
// Each thread block runs its threads as fibers on the launching OS thread. A fiber runs until it
// reaches a barrier or a warp collective; the order in which fibers run between barriers is
// shuffled on every launch, so code that reads another thread's data without a barrier sees stale
// or poisoned (NaN) values. Warp collectives exchange values only when every lane named in the
// mask has arrived, so code that assumes lock-step warps without saying so fails here too.
//
// A cluster launch (sm_90 thread-block clusters) runs all blocks of a cluster at once, their
// threads as one group of fibers shuffled together, with cluster barriers and distributed shared
// memory (a pointer into a peer block's dynamic shared memory); clusters run one after another.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>

#define XLSTM_SIM_ACTIVE 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// Blocks run one after another, so one static instance per declaration serves every block.
#define __shared__ static

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
using cudaStream_t = struct CUstream_st*;

namespace xlstm_sim {

constexpr size_t kMaxDynamicSharedBytes = 227 * 1024;  // sm_90's opt-in limit per block

struct ThreadContext {
  dim3 thread_idx, block_idx, block_dim, grid_dim;
};

// The context of the fiber that is running; only valid inside a kernel body.
const ThreadContext& current();
void syncthreads();
// Every lane in `mask` contributes `bits` and receives the bits of lane `src_lane` (its own when
// `src_lane` is outside the mask).
uint64_t warp_shuffle(unsigned mask, uint64_t bits, int src_lane);
unsigned warp_ballot(unsigned mask, bool predicate);
void syncwarp(unsigned mask);
// Dynamic shared memory of the running block, filled with NaN bytes at block start.
void* dynamic_shared();
// Runs `body` for every thread of every block; throws std::runtime_error on a bad configuration
// or on a barrier / collective that can never complete.
void launch(dim3 grid, dim3 block, size_t dynamic_smem_bytes, const std::function<void()>& body);

// Thread-block clusters. A cluster has at most 8 blocks, or 16 where the kernel allows a
// non-portable cluster size (cudaFuncAttributeNonPortableClusterSizeAllowed).
constexpr unsigned kMaxPortableClusterBlocks = 8;
constexpr unsigned kMaxClusterBlocks = 16;
// As launch, with the grid in clusters of `cluster` blocks (cudaLaunchAttributeClusterDimension).
void launch_cluster(dim3 grid, dim3 block, dim3 cluster, size_t dynamic_smem_bytes, bool non_portable_cluster_size,
                    const std::function<void()>& body);
// barrier.cluster.arrive / .wait: a wait returns once every thread of the cluster has arrived as
// often as the waiting thread has; each thread alternates arrive and wait.
void cluster_arrive();
void cluster_wait();
unsigned cluster_block_rank();
unsigned cluster_blocks();
// mapa: the address in block `rank`'s dynamic shared memory of `ptr`, an address in the running
// block's. Only after the caller has passed a cluster barrier (before it, the peer may not have
// started) and while block `rank` runs: its shared memory is released when its threads exit, so
// a peer's later access through a pointer mapped before is a use after free (AddressSanitizer).
void* cluster_map_shared_rank(const void* ptr, unsigned rank);

template <typename T>
uint64_t to_bits(T value) {
  static_assert(sizeof(T) <= sizeof(uint64_t) && std::is_trivially_copyable<T>::value,
                "warp shuffles move values of at most 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  return bits;
}
template <typename T>
T from_bits(uint64_t bits) {
  T value;
  std::memcpy(&value, &bits, sizeof(T));
  return value;
}
inline int lane_id();

}  // namespace xlstm_sim

#define threadIdx (::xlstm_sim::current().thread_idx)
#define blockIdx (::xlstm_sim::current().block_idx)
#define blockDim (::xlstm_sim::current().block_dim)
#define gridDim (::xlstm_sim::current().grid_dim)
constexpr int warpSize = 32;

namespace xlstm_sim {
inline int lane_id() {
  const ThreadContext& t = current();
  const unsigned linear = t.thread_idx.x + t.block_dim.x * (t.thread_idx.y + t.block_dim.y * t.thread_idx.z);
  return static_cast<int>(linear % warpSize);
}
}  // namespace xlstm_sim

inline void __syncthreads() { xlstm_sim::syncthreads(); }
// The sm_90 cluster intrinsics (crt/sm_90_rt.h) the kernels use.
inline void __cluster_barrier_arrive() { xlstm_sim::cluster_arrive(); }
inline void __cluster_barrier_wait() { xlstm_sim::cluster_wait(); }
inline unsigned __clusterRelativeBlockRank() { return xlstm_sim::cluster_block_rank(); }
inline unsigned __clusterSizeInBlocks() { return xlstm_sim::cluster_blocks(); }
inline void* __cluster_map_shared_rank(const void* ptr, unsigned rank) {
  return xlstm_sim::cluster_map_shared_rank(ptr, rank);
}
inline void __syncwarp(unsigned mask = 0xffffffffu) { xlstm_sim::syncwarp(mask); }
inline unsigned __ballot_sync(unsigned mask, int predicate) {
  return xlstm_sim::warp_ballot(mask, predicate != 0);
}

template <typename T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize) {
  const int lane = xlstm_sim::lane_id();
  const int src = (lane & ~(width - 1)) + (src_lane & (width - 1));
  return xlstm_sim::from_bits<T>(xlstm_sim::warp_shuffle(mask, xlstm_sim::to_bits(var), src));
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize) {
  const int lane = xlstm_sim::lane_id();
  const int src = lane ^ lane_mask;
  const bool same_segment = (src & ~(width - 1)) == (lane & ~(width - 1));
  return xlstm_sim::from_bits<T>(
      xlstm_sim::warp_shuffle(mask, xlstm_sim::to_bits(var), same_segment ? src : lane));
}
template <typename T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  const int lane = xlstm_sim::lane_id();
  const int src = lane + static_cast<int>(delta);
  const bool same_segment = (src & ~(width - 1)) == (lane & ~(width - 1));
  return xlstm_sim::from_bits<T>(
      xlstm_sim::warp_shuffle(mask, xlstm_sim::to_bits(var), same_segment ? src : lane));
}
template <typename T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  const int lane = xlstm_sim::lane_id();
  const int src = lane - static_cast<int>(delta);
  const bool same_segment = src >= 0 && (src & ~(width - 1)) == (lane & ~(width - 1));
  return xlstm_sim::from_bits<T>(
      xlstm_sim::warp_shuffle(mask, xlstm_sim::to_bits(var), same_segment ? src : lane));
}

