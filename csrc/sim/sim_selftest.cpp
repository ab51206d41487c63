// Checks the emulation's own semantics (shuffles, votes, barriers, errors) against what the CUDA
// programming guide specifies. Built and run by CMake's ctest; no torch needed.
#include <algorithm>
#include <cmath>
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

__global__ void read_static_shared(float* out) {
  XLSTM_STATIC_SHARED(float, staged, [32]);
  out[blockIdx.x * blockDim.x + threadIdx.x] = staged[threadIdx.x];
  __syncthreads();
  staged[threadIdx.x] = 0.f;  // what the next block must not see
}

__global__ void record_block_order(int* order, int* next) {
  if (threadIdx.x == 0) order[(*next)++] = static_cast<int>(blockIdx.x + gridDim.x * blockIdx.y);
}

__global__ void divergent_shuffle(int* out) {
  if (threadIdx.x % 2 == 0) out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1, 1);
  __syncthreads();
}

__global__ void full_mask_in_partial_warp(int* out) { out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1, 1); }

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
    std::vector<float> out(3 * 32);
    xlstm_sim::launch(dim3(3), dim3(32), 0, [&] { read_static_shared(out.data()); });
    bool all_nan = true;
    for (float v : out) all_nan = all_nan && std::isnan(v);
    expect(all_nan, "static shared memory starts as NaN in every block");
  }
  {
    const int blocks = 6 * 5;
    std::vector<int> order(blocks, -1);
    int next = 0;
    xlstm_sim::launch(dim3(6, 5), dim3(32), 0, [&] { record_block_order(order.data(), &next); });
    std::vector<int> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    bool each_once = next == blocks;
    for (int b = 0; b < blocks; ++b) each_once = each_once && sorted[b] == b;
    expect(each_once, "every block runs once");
    expect(!std::is_sorted(order.begin(), order.end()), "blocks run in a shuffled order");
  }
  expect_throw([] { xlstm_sim::launch(dim3(1), dim3(256), 0, [] {}, xlstm_sim::KernelLimits{128}); },
               "__launch_bounds__");
  expect_throw([] { xlstm_sim::launch(dim3(1), dim3(32), 64 * 1024, [] {}); }, "cudaFuncSetAttribute");
  std::vector<int> scratch(64);
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
