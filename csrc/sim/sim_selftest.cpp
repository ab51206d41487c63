// Checks the emulation's own semantics (shuffles, votes, barriers, errors) against what the CUDA
// programming guide specifies. Built and run by CMake's ctest; no torch needed.
#include <algorithm>
#include <cmath>
#include <functional>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/cuda_compat.h"
#include "cuda/mma.cuh"
#include "cuda/tile_mma.cuh"

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

// The fragment functions of cuda/mma.cuh against the PTX ISA's layouts, written out here on their
// own (g = lane / 4, t = lane % 4) rather than taken from the header.
constexpr int kLdmatrixLd = 24;  // elements per shared row: 48 bytes, 16-byte aligned rows

uint16_t ldmatrix_code(int matrix, int row, int col) { return static_cast<uint16_t>(matrix << 8 | row << 4 | col); }

// Matrix i of kMatrices at rows 8i .. 8i + 7 of a [32][kLdmatrixLd] buffer; lane l gives row l % 8 of
// matrix l / 8 (plus `misalign` elements).
template <int kMatrices, bool kTranspose>
__global__ void ldmatrix_kernel(uint32_t* out, int misalign) {
  XLSTM_DYNAMIC_SHARED(uint16_t, smem);
  const int lane = threadIdx.x;
  for (int r = 0; r < 8; ++r)  // lane -> (matrix lane / 8, row r, column lane % 8)
    smem[(8 * (lane / 8) + r) * kLdmatrixLd + lane % 8] = ldmatrix_code(lane / 8, r, lane % 8);
  __syncwarp();
  uint32_t regs[kMatrices];
  xlstm::ldmatrix<kMatrices, kTranspose>(regs, smem + lane * kLdmatrixLd + misalign);
  for (int i = 0; i < kMatrices; ++i) out[lane * kMatrices + i] = regs[i];
}

template <int kMatrices, bool kTranspose>
void check_ldmatrix() {
  std::vector<uint32_t> out(32 * kMatrices);
  xlstm_sim::launch(dim3(1), dim3(32), 32 * kLdmatrixLd * 2, [&] { ldmatrix_kernel<kMatrices, kTranspose>(out.data(), 0); });
  const std::string what = "ldmatrix x" + std::to_string(kMatrices) + (kTranspose ? ".trans" : "");
  for (int lane = 0; lane < 32; ++lane)
    for (int i = 0; i < kMatrices; ++i)
      for (int half = 0; half < 2; ++half) {
        const int g = lane / 4, t = lane % 4;
        const uint16_t want = kTranspose ? ldmatrix_code(i, 2 * t + half, g) : ldmatrix_code(i, g, 2 * t + half);
        const uint16_t got = static_cast<uint16_t>(out[lane * kMatrices + i] >> (16 * half));
        expect(got == want, what + ": lane " + std::to_string(lane) + " register " + std::to_string(i));
      }
  expect_throw([&] { xlstm_sim::launch(dim3(1), dim3(32), 32 * kLdmatrixLd * 2, [&] {
                   ldmatrix_kernel<kMatrices, kTranspose>(out.data(), 4);
                 }); },
               "16-byte aligned");
}

// D = A B + C for one m16n8k16 tile, every lane building its fragments by the ISA's formulas;
// with `wrong_lane`, each lane takes the A fragment of lane ^ 1 instead.
template <typename T>
__global__ void mma_kernel(const float* A, const float* B, const float* C, float* D, bool wrong_lane) {
  const int lane = threadIdx.x, src = wrong_lane ? lane ^ 1 : lane;
  const auto pack = [](float lo, float hi) {
    return static_cast<uint32_t>(xlstm::mma_operand_bits<T>(lo)) | xlstm::mma_operand_bits<T>(hi) << 16;
  };
  uint32_t a[4], b[2];
  float d[4];
  for (int r = 0; r < 4; ++r) {  // a[r]: A[g + 8 (r % 2)][2t + 8 (r / 2) + {0, 1}]
    const int row = src / 4 + 8 * (r % 2), col = 2 * (src % 4) + 8 * (r / 2);
    a[r] = pack(A[row * 16 + col], A[row * 16 + col + 1]);
  }
  for (int r = 0; r < 2; ++r) {  // b[r]: B[2t + 8 r + {0, 1}][g]
    const int k = 2 * (lane % 4) + 8 * r, col = lane / 4;
    b[r] = pack(B[k * 8 + col], B[(k + 1) * 8 + col]);
  }
  for (int r = 0; r < 4; ++r) d[r] = C[(lane / 4 + 8 * (r / 2)) * 8 + 2 * (lane % 4) + r % 2];
  xlstm::mma_m16n8k16<T>(d, a, b);
  for (int r = 0; r < 4; ++r) D[lane * 4 + r] = d[r];
}

template <typename T>
void check_mma(const char* type) {
  // Small integers and halves: exact in bf16 and fp16, and the products' sums exact in float32.
  std::vector<float> A(16 * 16), B(16 * 8), C(16 * 8), D(32 * 4);
  for (size_t e = 0; e < A.size(); ++e) A[e] = static_cast<float>(static_cast<int>((e * 37 + 11) % 17) - 8) / 2;
  for (size_t e = 0; e < B.size(); ++e) B[e] = static_cast<float>(static_cast<int>((e * 23 + 5) % 13) - 6);
  for (size_t e = 0; e < C.size(); ++e) C[e] = static_cast<float>(static_cast<int>(e % 7) - 3);
  for (const bool wrong_lane : {false, true}) {
    xlstm_sim::launch(dim3(1), dim3(32), 0, [&] { mma_kernel<T>(A.data(), B.data(), C.data(), D.data(), wrong_lane); });
    int wrong = 0;
    for (int lane = 0; lane < 32; ++lane)
      for (int r = 0; r < 4; ++r) {
        const int row = lane / 4 + 8 * (r / 2), col = 2 * (lane % 4) + r % 2;  // c[r]: C[g + 8 (r / 2)][2t + r % 2]
        expect(xlstm::mma_c_row(lane, r) == row && xlstm::mma_c_col(lane, r) == col,
               std::string("mma_c_row / mma_c_col follow the C fragment layout"));
        float want = C[row * 8 + col];
        for (int k = 0; k < 16; ++k) want += A[row * 16 + k] * B[k * 8 + col];
        wrong += D[lane * 4 + r] != want;
      }
    if (wrong_lane)
      expect(wrong > 0, std::string("mma ") + type + " with A fragments in the wrong lanes gives a wrong D");
    else
      expect(wrong == 0, std::string("mma ") + type + " m16n8k16: " + std::to_string(wrong) + " wrong elements");
  }
}

// The tensor-core tile product (cuda/tile_mma.cuh) for every operand order and split, against a
// double product: rounded operands within the 16-bit type's rounding error, a split operand (the
// other one exact in the type) at about twice the precision.
struct MmaTestTraits {
  static constexpr int kTile = 64, kThreads = 256;
};

template <xlstm::Adjacent kA, xlstm::Adjacent kB, xlstm::SplitOperand kSplit, typename T>
__global__ void tile_product_kernel(const float* A, const float* B, float* C, int depth) {
  XLSTM_DYNAMIC_SHARED(float, stage);
  xlstm::MmaTileAcc<MmaTestTraits, T> acc;
  acc.fill(1.f);
  xlstm::tile_gemm<kA, kB, kSplit>(
      acc, depth, [&](int m, int k) { return m < 60 ? A[m * depth + k] : 0.f; },
      [&](int k, int n) { return n < 50 ? B[k * 64 + n] : 0.f; }, stage);
  acc.for_each([&](int r, int c, float& x) { C[r * 64 + c] = x; });
}

template <xlstm::Adjacent kA, xlstm::Adjacent kB, xlstm::SplitOperand kSplit, typename T>
void check_tile_product(int depth, double bound, const std::string& what) {
  std::vector<float> A(64 * depth), B(depth * 64), C(64 * 64, NAN);
  // A and B deterministic and irregular; the operand that is not split is exact in T.
  for (size_t e = 0; e < A.size(); ++e) A[e] = std::sin(0.7f * e + 0.3f) * (1.f + (e % 5));
  for (size_t e = 0; e < B.size(); ++e) B[e] = std::cos(1.3f * e + 0.1f) * (1.f + (e % 3));
  const auto exact = [](std::vector<float>& x) {
    for (float& v : x) v = static_cast<float>(T(v));
  };
  if (kSplit == xlstm::SplitOperand::kA) exact(B);
  if (kSplit == xlstm::SplitOperand::kB) exact(A);
  xlstm_sim::launch(dim3(1), dim3(256), xlstm::tile_mma_stage_floats<MmaTestTraits>() * sizeof(float),
                    [&] { tile_product_kernel<kA, kB, kSplit, T>(A.data(), B.data(), C.data(), depth); });
  double err = 0, norm = 0;
  for (int r = 0; r < 64; ++r)
    for (int c = 0; c < 64; ++c) {
      double want = 1;
      if (r < 60 && c < 50)
        for (int k = 0; k < depth; ++k) want += static_cast<double>(A[r * depth + k]) * B[k * 64 + c];
      err += (C[r * 64 + c] - want) * (C[r * 64 + c] - want);
      norm += want * want;
    }
  const double rel = std::sqrt(err / norm);
  expect(rel < bound, what + ": relative error " + std::to_string(rel) + " >= " + std::to_string(bound));
}

template <typename T>
void check_tile_products(const char* type, double rounding) {
  using xlstm::Adjacent;
  using Split = xlstm::SplitOperand;
  for (int depth : {1, 45, 64}) {
    const std::string at = std::string(type) + " depth " + std::to_string(depth);
    check_tile_product<Adjacent::kDepth, Adjacent::kDepth, Split::kNone, T>(depth, rounding, "tile_gemm dd " + at);
    check_tile_product<Adjacent::kDepth, Adjacent::kOuter, Split::kNone, T>(depth, rounding, "tile_gemm do " + at);
    check_tile_product<Adjacent::kOuter, Adjacent::kDepth, Split::kNone, T>(depth, rounding, "tile_gemm od " + at);
    check_tile_product<Adjacent::kOuter, Adjacent::kOuter, Split::kNone, T>(depth, rounding, "tile_gemm oo " + at);
    check_tile_product<Adjacent::kOuter, Adjacent::kOuter, Split::kA, T>(depth, rounding * rounding,
                                                                           "tile_gemm split A " + at);
    check_tile_product<Adjacent::kDepth, Adjacent::kOuter, Split::kB, T>(depth, rounding * rounding,
                                                                           "tile_gemm split B " + at);
  }
}

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
  check_ldmatrix<1, false>();
  check_ldmatrix<2, false>();
  check_ldmatrix<4, false>();
  check_ldmatrix<1, true>();
  check_ldmatrix<2, true>();
  check_ldmatrix<4, true>();
  check_mma<c10::BFloat16>("bf16");
  check_mma<c10::Half>("fp16");
  check_tile_products<c10::BFloat16>("bf16", 1.0 / 128);
  check_tile_products<c10::Half>("fp16", 1.0 / 1024);
  const xlstm_sim::KernelLimits non_portable_cluster{xlstm_sim::kMaxThreadsPerBlock,
                                                     {xlstm_sim::kDefaultDynamicSharedBytes, true}};
  {
    const int clusters = 3, blocks = 4, threads = 64;
    std::vector<int> out(clusters * blocks * threads);
    xlstm_sim::launch_cluster(dim3(clusters * blocks), dim3(threads), dim3(blocks), threads * sizeof(int),
                              [&] { cluster_ring(out.data()); });
    bool ok = true;
    for (int b = 0; b < clusters * blocks; ++b)
      for (int t = 0; t < threads; ++t) {
        const int rank = b % blocks, peer = b - rank + (rank + 1) % blocks;
        ok = ok && out[b * threads + t] == 1000 * peer + t + 100000 * rank;
      }
    expect(ok, "cluster ranks, barriers and distributed shared memory");
    std::vector<int> wide(16 * 32);
    xlstm_sim::launch_cluster(dim3(16), dim3(32), dim3(16), 32 * sizeof(int), [&] { cluster_ring(wide.data()); },
                              non_portable_cluster);
    expect(wide[15 * 32] == 0 + 100000 * 15, "a non-portable cluster of 16 blocks");
  }
  {
    const int blocks = 24;
    std::vector<int> order(blocks, -1);
    int next = 0;
    xlstm_sim::launch_cluster(dim3(blocks), dim3(32), dim3(2), 0, [&] { record_block_order(order.data(), &next); });
    std::vector<int> clusters;
    for (int b : order) clusters.push_back(b / 2);
    std::vector<int> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    bool each_once = next == blocks;
    for (int b = 0; b < blocks; ++b) each_once = each_once && sorted[b] == b;
    expect(each_once, "every block of a cluster launch runs once");
    expect(!std::is_sorted(clusters.begin(), clusters.end()), "clusters run in a shuffled order");
    std::vector<float> smem(2 * 32);
    xlstm_sim::launch_cluster(dim3(2), dim3(32), dim3(2), 32 * sizeof(float), [&] { read_dynamic_shared(smem.data()); });
    bool all_nan = true;
    for (int t = 0; t < 32; ++t) all_nan = all_nan && std::isnan(smem[t]);
    expect(all_nan, "dynamic shared memory starts as NaN in a cluster's blocks");
    expect_throw([&] {
      xlstm_sim::launch_cluster(dim3(2), dim3(32), dim3(2), 0, [&] { read_static_shared(smem.data()); });
    }, "in a cluster launch");
  }
  expect_throw([] { xlstm_sim::launch_cluster(dim3(2), dim3(256), dim3(2), 0, [] {}, xlstm_sim::KernelLimits{128}); },
               "__launch_bounds__");
  expect_throw([] { xlstm_sim::launch_cluster(dim3(2), dim3(32), dim3(2), 64 * 1024, [] {}); }, "cudaFuncSetAttribute");
  std::vector<int> scratch(64);
  const auto cluster_of = [non_portable_cluster](unsigned blocks, bool non_portable, const std::function<void()>& body) {
    return [=] {
      xlstm_sim::launch_cluster(dim3(blocks), dim3(32), dim3(blocks), 128, body,
                                non_portable ? non_portable_cluster : xlstm_sim::KernelLimits{});
    };
  };
  expect_throw(cluster_of(9, false, [] {}), "max 8 without the non-portable");
  expect_throw(cluster_of(17, true, [] {}), "max 16");
  expect_throw([] { xlstm_sim::launch_cluster(dim3(6), dim3(32), dim3(4), 0, [] {}); }, "whole number of clusters");
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
