// Host emulation of the CUDA execution model, so that g++ can compile and run the project's
// unchanged .cu sources on the CPU (built as xlstm_cuda._sim, tested in CI).
//
// Each thread block runs its threads as fibers on the launching OS thread. A fiber runs until it
// reaches a barrier or a warp collective; the order in which fibers run between barriers is
// shuffled on every launch, so code that reads another thread's data without a barrier sees stale
// or poisoned (NaN) values. Warp collectives exchange values only when every lane named in the
// mask has arrived, so code that assumes lock-step warps without saying so fails here too. Blocks
// run one at a time in a shuffled order, each starting with its shared memory (static and dynamic)
// poisoned, so code that depends on block order or on shared memory left by another block fails.
//
// A cluster launch (sm_90 thread-block clusters) runs all blocks of a cluster at once, their
// threads as one group of fibers shuffled together, with cluster barriers and distributed shared
// memory (a pointer into a peer block's dynamic shared memory); clusters run one after another in a
// shuffled order, each block's dynamic shared memory poisoned at its start.
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
// The sim cannot read a kernel's bound from its declaration: the launch carries it
// (xlstm::LaunchBounds, common/kernel_launch.h) and the sim checks it.
#define __launch_bounds__(...)
// Static shared memory is declared with XLSTM_STATIC_SHARED (common/cuda_compat.h), which the sim
// poisons at every block start; a bare __shared__ would not be, so it does not compile here.
#define __shared__ static_assert(false, "declare static shared memory with XLSTM_STATIC_SHARED(type, name, dims)");

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
using cudaStream_t = struct CUstream_st*;

// The kernel attributes the project sets (kernel_launch.h), emulated so that a launch above 48 KB
// of dynamic shared memory, or in clusters of more than 8 blocks, fails without them, as on the GPU.
enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1 };
enum cudaFuncAttribute {
  cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
  cudaFuncAttributeNonPortableClusterSizeAllowed = 12,
};

namespace xlstm_sim {

constexpr size_t kMaxDynamicSharedBytes = 227 * 1024;  // sm_90's opt-in limit per block
constexpr size_t kDefaultDynamicSharedBytes = 48 * 1024;  // the limit without the opt-in attribute
constexpr unsigned kMaxThreadsPerBlock = 1024;

// A kernel's opt-in attributes (cudaFuncSetAttribute): its dynamic shared memory
// (cudaFuncAttributeMaxDynamicSharedMemorySize) and whether it may run in clusters of more than 8
// blocks (cudaFuncAttributeNonPortableClusterSizeAllowed).
struct KernelAttributes {
  size_t max_dynamic_shared_bytes = kDefaultDynamicSharedBytes;
  bool non_portable_cluster_size = false;
};

// What a launch may use of a kernel: its __launch_bounds__ and its attributes.
struct KernelLimits {
  unsigned max_threads_per_block = kMaxThreadsPerBlock;
  KernelAttributes attributes = {};
};

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
// Every lane in `mask` contributes `bytes` (at most kMaxGatherBytes) from `mine` and receives every
// lane's contribution in `all` (lane l's at all + l * bytes; lanes outside the mask left as they
// are): the collective behind the emulated warp-wide matrix instructions (cuda/mma.cuh).
constexpr size_t kMaxGatherBytes = 64;
void warp_all_gather(unsigned mask, const void* mine, size_t bytes, void* all);
void syncwarp(unsigned mask);
// Dynamic shared memory of the running block, filled with NaN bytes at block start.
void* dynamic_shared();
// Registers a static shared variable (XLSTM_STATIC_SHARED, once per variable) and fills it with NaN
// bytes, as the sim then does at every block start. Blocks run one after another, so one instance
// serves every block; not so a cluster's, which run at once: use_static_shared (at every
// execution of the declaration) rejects static shared memory in a cluster launch.
bool register_static_shared(void* variable, size_t bytes);
bool use_static_shared();
// Runs `body` for every thread of every block; throws std::runtime_error on a bad configuration
// (one beyond the GPU's limits or the kernel's `limits`) or on a barrier / collective that can
// never complete.
void launch(dim3 grid, dim3 block, size_t dynamic_smem_bytes, const std::function<void()>& body,
            const KernelLimits& limits = {});
// For the cross-block race check (race_check.cpp): the block running on this OS thread, if any (a
// launch counter tells launches apart), and whether an address is that block's own memory (its
// threads' stacks, its shared memory) rather than memory the launch was given.
struct RunningBlock {
  uint64_t launch;
  dim3 block_idx;
};
bool running_block(RunningBlock* block);
bool is_block_local(const void* address);
// The kernel's attributes (cudaFuncSetAttribute), the defaults until set; kernels are named by
// their address.
cudaError_t set_kernel_attribute(const void* kernel, cudaFuncAttribute attribute, int value);
KernelAttributes kernel_attributes_of(const void* kernel);

// Thread-block clusters. A cluster has at most 8 blocks, or 16 where the kernel allows a
// non-portable cluster size (cudaFuncAttributeNonPortableClusterSizeAllowed).
constexpr unsigned kMaxPortableClusterBlocks = 8;
constexpr unsigned kMaxClusterBlocks = 16;
// As launch, with the grid in clusters of `cluster` blocks (cudaLaunchAttributeClusterDimension);
// more than 8 need limits.attributes.non_portable_cluster_size.
void launch_cluster(dim3 grid, dim3 block, dim3 cluster, size_t dynamic_smem_bytes, const std::function<void()>& body,
                    const KernelLimits& limits = {});
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

template <typename... Args>
cudaError_t cudaFuncSetAttribute(void (*kernel)(Args...), cudaFuncAttribute attribute, int value) {
  return xlstm_sim::set_kernel_attribute(reinterpret_cast<const void*>(kernel), attribute, value);
}

namespace xlstm_sim {
// The limits a launch of `kernel` runs under: `max_threads_per_block` (its __launch_bounds__) and
// the attributes set for it.
template <typename... Args>
KernelLimits kernel_limits(void (*kernel)(Args...), unsigned max_threads_per_block = kMaxThreadsPerBlock) {
  return {max_threads_per_block, kernel_attributes_of(reinterpret_cast<const void*>(kernel))};
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

// CUDA's fast approximate intrinsics (the Programming Guide's table of single-precision
// intrinsics: __expf's error grows with |x|, __fdividef is 2 ulp and returns 0 for huge divisors,
// ...). The kernels call none; glibc declares several of these names as exact libm functions,
// which would make a kernel calling one pass here and miss its bound on the GPU, so the emulation
// rejects them at compile time. A kernel that needs one gets a host version with its documented
// error added here first.
#define XLSTM_SIM_APPROXIMATE_INTRINSIC(name)                                                               \
  ([] {                                                                                                     \
    static_assert(sizeof(float) == 0, #name " is a CUDA approximate intrinsic that the emulation does not " \
                                            "model (csrc/sim/cuda_sim.h): use the exact function");         \
    return 0.f;                                                                                             \
  }())
#define __expf(...) XLSTM_SIM_APPROXIMATE_INTRINSIC(__expf)
#define __exp10f(...) XLSTM_SIM_APPROXIMATE_INTRINSIC(__exp10f)
#define __logf(...) XLSTM_SIM_APPROXIMATE_INTRINSIC(__logf)
#define __log2f(...) XLSTM_SIM_APPROXIMATE_INTRINSIC(__log2f)
#define __log10f(...) XLSTM_SIM_APPROXIMATE_INTRINSIC(__log10f)
#define __powf(...) XLSTM_SIM_APPROXIMATE_INTRINSIC(__powf)
#define __sinf(...) XLSTM_SIM_APPROXIMATE_INTRINSIC(__sinf)
#define __cosf(...) XLSTM_SIM_APPROXIMATE_INTRINSIC(__cosf)
#define __sincosf(...) XLSTM_SIM_APPROXIMATE_INTRINSIC(__sincosf)
#define __tanf(...) XLSTM_SIM_APPROXIMATE_INTRINSIC(__tanf)
#define __tanhf(...) XLSTM_SIM_APPROXIMATE_INTRINSIC(__tanhf)
#define __fdividef(...) XLSTM_SIM_APPROXIMATE_INTRINSIC(__fdividef)
