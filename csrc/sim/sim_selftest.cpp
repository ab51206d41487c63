// Checks the emulation's own semantics (shuffles, votes, barriers, errors) against what the CUDA
// programming guide specifies. Built and run by CMake's ctest; no torch needed.
#include <cmath>
#include <functional>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/cuda_compat.h"

namespace {

int failures = 0;

void expect(bool ok, const std::string& what) {
  if (!ok) {
    std::fprintf(stderr, "FAILED: %s\n", what.c_str());
    ++failures;
  }
}

void expect_throw(const std::function<void()>& fn, const std::string& fragment) {
  try {
    fn();
  } catch (const std::runtime_error& e) {
    expect(std::string(e.what()).find(fragment) != std::string::npos, "error mentions '" + fragment + "': " + e.what());
    return;
  }
  expect(false, "expected an error mentioning '" + fragment + "'");
}

__global__ void shuffles(int* out) {
  const int t = threadIdx.x, lane = t % warpSize;
  int* o = out + 5 * t;
  o[0] = __shfl_xor_sync(0xffffffffu, t, 1);
  o[1] = __shfl_down_sync(0xffffffffu, t, 3);
  o[2] = __shfl_up_sync(0xffffffffu, t, 2, 16);
  o[3] = __shfl_sync(0xffffffffu, t, 5);
  o[4] = static_cast<int>(__ballot_sync(0xffffffffu, lane % 3 == 0));
}

__global__ void block_sum(const float* x, float* out) {
  XLSTM_DYNAMIC_SHARED(float, partial);
  partial[threadIdx.x] = x[blockIdx.x * blockDim.x + threadIdx.x];
  __syncthreads();
  for (unsigned s = blockDim.x / 2; s > 0; s /= 2) {
    if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = partial[0];
}

__global__ void read_dynamic_shared(float* out) {
  XLSTM_DYNAMIC_SHARED(float, smem);
  out[threadIdx.x] = smem[threadIdx.x];
}

__global__ void divergent_shuffle(int* out) {
  if (threadIdx.x % 2 == 0) out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1, 1);
  __syncthreads();
}

__global__ void full_mask_in_partial_warp(int* out) { out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1, 1); }

// Each block of a cluster publishes values in its shared memory and reads its neighbour's through
// distributed shared memory; warp shuffles stay within each block's warps.
__global__ void cluster_ring(int* out) {
  XLSTM_DYNAMIC_SHARED(int, own);
  const unsigned rank = __clusterRelativeBlockRank(), blocks = __clusterSizeInBlocks();
  __cluster_barrier_arrive();
  __cluster_barrier_wait();  // every block has started: its shared memory may be used
  own[threadIdx.x] = static_cast<int>(1000 * blockIdx.x + threadIdx.x);
  const int neighbour_lane = __shfl_xor_sync(0xffffffffu, static_cast<int>(threadIdx.x), 1);
  __cluster_barrier_arrive();
  __cluster_barrier_wait();
  const int* peer = static_cast<const int*>(__cluster_map_shared_rank(own, (rank + 1) % blocks));
  out[blockIdx.x * blockDim.x + threadIdx.x] = peer[threadIdx.x] + 100000 * static_cast<int>(rank) +
                                               (neighbour_lane == static_cast<int>(threadIdx.x ^ 1) ? 0 : -1);
  __cluster_barrier_arrive();
  __cluster_barrier_wait();  // no block exits while a peer may still read its shared memory
}

__global__ void cluster_map_before_barrier(int* out) {
  XLSTM_DYNAMIC_SHARED(int, own);
  out[threadIdx.x] = *static_cast<int*>(__cluster_map_shared_rank(own, 0));
}

__global__ void cluster_wait_without_arrive() { __cluster_barrier_wait(); }

__global__ void cluster_arrive_twice() {
  __cluster_barrier_arrive();
  __cluster_barrier_arrive();
}

__global__ void cluster_map_global_memory(int* out) {
  __cluster_barrier_arrive();
  __cluster_barrier_wait();
  (void)__cluster_map_shared_rank(out, 0);
}

__global__ void cluster_block_exits_early() {
  if (__clusterRelativeBlockRank() == 0) return;
  __cluster_barrier_arrive();
  __cluster_barrier_wait();
}

}  // namespace

int main() {
  {
    const int threads = 64;
    std::vector<int> out(5 * threads);
    xlstm_sim::launch(dim3(1), dim3(threads), 0, [&] { shuffles(out.data()); });
    for (int t = 0; t < threads; ++t) {
      const int lane = t % 32, base = t - lane;
      expect(out[5 * t] == (t ^ 1), "shfl_xor");
      expect(out[5 * t + 1] == (lane + 3 < 32 ? t + 3 : t), "shfl_down keeps its own value past the warp");
      expect(out[5 * t + 2] == (lane % 16 >= 2 ? t - 2 : t), "shfl_up within 16-lane segments");
      expect(out[5 * t + 3] == base + 5, "shfl from lane 5");
      unsigned want = 0;
      for (int l = 0; l < 32; l += 3) want |= 1u << l;
      expect(static_cast<unsigned>(out[5 * t + 4]) == want, "ballot");
    }
  }
  {
    const int blocks = 3, threads = 128;
    std::vector<float> x(blocks * threads), out(blocks);
    for (size_t idx = 0; idx < x.size(); ++idx) x[idx] = static_cast<float>(idx % 7);
    xlstm_sim::launch(dim3(blocks), dim3(threads), threads * sizeof(float), [&] { block_sum(x.data(), out.data()); });
    for (int b = 0; b < blocks; ++b) {
      float want = 0;
      for (int t = 0; t < threads; ++t) want += x[b * threads + t];
      expect(out[b] == want, "block sum with barriers");
    }
  }
  {
    std::vector<float> out(32);
    xlstm_sim::launch(dim3(1), dim3(32), 32 * sizeof(float), [&] { read_dynamic_shared(out.data()); });
    bool all_nan = true;
    for (float v : out) all_nan = all_nan && std::isnan(v);
    expect(all_nan, "dynamic shared memory starts as NaN");
  }
  {
    const int clusters = 3, blocks = 4, threads = 64;
    std::vector<int> out(clusters * blocks * threads);
    xlstm_sim::launch_cluster(dim3(clusters * blocks), dim3(threads), dim3(blocks), threads * sizeof(int), false,
                              [&] { cluster_ring(out.data()); });
    bool ok = true;
    for (int b = 0; b < clusters * blocks; ++b)
      for (int t = 0; t < threads; ++t) {
        const int rank = b % blocks, peer = b - rank + (rank + 1) % blocks;
        ok = ok && out[b * threads + t] == 1000 * peer + t + 100000 * rank;
      }
    expect(ok, "cluster ranks, barriers and distributed shared memory");
    std::vector<int> wide(16 * 32);
    xlstm_sim::launch_cluster(dim3(16), dim3(32), dim3(16), 32 * sizeof(int), true, [&] { cluster_ring(wide.data()); });
    expect(wide[15 * 32] == 0 + 100000 * 15, "a non-portable cluster of 16 blocks");
  }
  std::vector<int> scratch(64);
  const auto cluster_of = [](unsigned blocks, bool non_portable, const std::function<void()>& body) {
    return [=] { xlstm_sim::launch_cluster(dim3(blocks), dim3(32), dim3(blocks), 128, non_portable, body); };
  };
  expect_throw(cluster_of(9, false, [] {}), "max 8 without the non-portable");
  expect_throw(cluster_of(17, true, [] {}), "max 16");
  expect_throw([] { xlstm_sim::launch_cluster(dim3(6), dim3(32), dim3(4), 0, false, [] {}); }, "whole number of clusters");
  expect_throw(cluster_of(2, false, [&] { cluster_map_before_barrier(scratch.data()); }), "before a cluster barrier");
  expect_throw(cluster_of(2, false, [] { cluster_wait_without_arrive(); }), "wait without an arrive");
  expect_throw(cluster_of(2, false, [] { cluster_arrive_twice(); }), "arrive twice");
  expect_throw(cluster_of(2, false, [&] { cluster_map_global_memory(scratch.data()); }), "not in this block's dynamic");
  expect_throw(cluster_of(2, false, [] { cluster_block_exits_early(); }), "deadlock");
  expect_throw([] { xlstm_sim::launch(dim3(1), dim3(32), 0, [] { (void)__clusterRelativeBlockRank(); }); },
               "without a cluster dimension");
  expect_throw([&] { xlstm_sim::launch(dim3(1), dim3(64), 0, [&] { divergent_shuffle(scratch.data()); }); },
               "deadlock");
  expect_throw([&] { xlstm_sim::launch(dim3(1), dim3(48), 0, [&] { full_mask_in_partial_warp(scratch.data()); }); },
               "not a multiple of the warp size");
  expect_throw([] { xlstm_sim::launch(dim3(1), dim3(2048), 0, [] {}); }, "threads per block");
  expect_throw([] { xlstm_sim::launch(dim3(1), dim3(32), 300 * 1024, [] {}); }, "dynamic shared memory");
  expect_throw([] { (void)threadIdx; }, "outside a kernel");
  std::printf("%s\n", failures == 0 ? "emulation self-test passed" : "emulation self-test FAILED");
  return failures == 0 ? 0 : 1;
}
