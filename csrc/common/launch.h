// Host-side launch plumbing shared by every .cu entry point (ATen side: device, stream, limits,
// outputs). Under XLSTM_SIM the same code drives the host emulation instead of the GPU, so no launch
// code is written twice.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>

#include <algorithm>
#include <limits>

#include "common/kernel_launch.h"

#if !defined(XLSTM_SIM)
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

// The input dtypes the CUDA kernels are instantiated for (states are float32): the body sees scalar_t.
#define XLSTM_DISPATCH_KERNEL_TYPES(TYPE, NAME, ...)                                         \
  AT_DISPATCH_SWITCH(TYPE, NAME, AT_DISPATCH_CASE(at::kFloat, __VA_ARGS__)                   \
                                     AT_DISPATCH_CASE(at::kBFloat16, __VA_ARGS__)            \
                                         AT_DISPATCH_CASE(at::kHalf, __VA_ARGS__))

#if defined(XLSTM_SIM)
#define XLSTM_KERNEL_DEVICE at::kCPU
#else
#define XLSTM_KERNEL_DEVICE at::kCUDA
#endif

namespace xlstm {

// The most dynamic shared memory one block of the current device can have (opt-in limit).
inline int64_t max_dynamic_shared_bytes() {
#if defined(XLSTM_SIM)
  return xlstm_sim::kMaxDynamicSharedBytes;
#else
  int device = 0, bytes = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  return bytes;
#endif
}

// Whether `bytes` of dynamic shared memory fit one block of the current device; and the check that
// fails, naming the op and what to change, where they do not.
inline bool fits_shared_memory(int64_t bytes) { return bytes <= max_dynamic_shared_bytes(); }
inline void check_shared_memory(int64_t bytes, const char* op, const char* remedy) {
  TORCH_CHECK(fits_shared_memory(bytes), op, ": needs ", bytes,
              " bytes of shared memory per block, more than this device's ", max_dynamic_shared_bytes(), "; ", remedy);
}

// CUDA's limit on a grid's y and z extents; also where the grid-stride kernels cap their x extent.
constexpr int64_t kMaxGridExtent = 65535;

inline void check_grid_extent(int64_t blocks, const char* op, const char* what) {
  TORCH_CHECK(blocks <= kMaxGridExtent, op, ": ", what, " = ", blocks, " exceeds the CUDA grid's limit of ",
              kMaxGridExtent, " blocks");
}

// Blocks of `threads` threads covering `total` elements once, capped: the kernels stride over the rest.
inline unsigned grid_stride_blocks(int64_t total, int threads) {
  return static_cast<unsigned>(std::min<int64_t>((total + threads - 1) / threads, kMaxGridExtent));
}

// Rows tiled for a weight-gradient reduction: each block (gridDim.y = count) sums a tile of at least
// `min_rows` rows into one partial row, and sum_tile_partials adds the partials in a fixed order, so
// the gradient is deterministic (no float atomics).
struct RowTiles {
  int64_t rows_per_tile, count;
};
inline RowTiles row_tiles(int64_t rows, int64_t min_rows) {
  const int64_t per_tile = std::max<int64_t>(min_rows, (rows + kMaxGridExtent - 1) / kMaxGridExtent);
  return {per_tile, (rows + per_tile - 1) / per_tile};
}
inline at::Tensor sum_tile_partials(const at::Tensor& partial) { return partial.sum(0); }

// Device guard and current stream for the duration of an entry point.
class DeviceScope {
 public:
#if defined(XLSTM_SIM)
  explicit DeviceScope(const at::Tensor&) {}
  cudaStream_t stream() const { return nullptr; }
#else
  explicit DeviceScope(const at::Tensor& t) : guard_(t.device()) {}
  cudaStream_t stream() const { return c10::cuda::getCurrentCUDAStream().stream(); }

 private:
  c10::cuda::CUDAGuard guard_;
#endif
};

// Output buffers of a kernel. The emulation fills them with NaN so that an element a kernel
// forgets to write fails the comparison with python_ref.
inline at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor t = at::empty(sizes, options);
#if defined(XLSTM_SIM)
  t.fill_(std::numeric_limits<double>::quiet_NaN());
#endif
  return t;
}

}  // namespace xlstm
