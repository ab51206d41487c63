// Test fixture for the host emulation: one small kernel in the shape of the project's kernels
// (a block-wide shared-memory reduction, then a row-wise write), and deliberately broken variants
// of it. tests/test_emulation_catches_bugs.py asserts that the emulation catches each bug.
#include "common/cuda_compat.h"

#include <stdexcept>

enum class Bug : int {
  none = 0,
  off_by_one = 1,       // writes one element past each row
  missing_barrier = 2,  // reads other threads' shared-memory partial sums before __syncthreads
  unwritten_row = 3,    // one block returns before writing its row
  warp_lockstep = 4,    // finishes the reduction inside a warp without __syncwarp (assumes lock-step)
};

// out[r, c] = x[r, c] / sqrt(1 + sum_c x[r, c]^2), one block per row, blockDim.x a power of two.
template <Bug bug>
__global__ void row_scale_kernel(const float* x, float* out, int rows, int cols) {
  XLSTM_DYNAMIC_SHARED(float, partial);
  const int row = blockIdx.x, tid = threadIdx.x;
  float acc = 0.f;
  for (int c = tid; c < cols; c += blockDim.x) acc += x[row * cols + c] * x[row * cols + c];
  partial[tid] = acc;
  if (bug != Bug::missing_barrier) __syncthreads();
  const int lockstep_from = bug == Bug::warp_lockstep ? warpSize : 0;
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (tid < stride) partial[tid] += partial[tid + stride];
    if (stride > lockstep_from) __syncthreads();
  }
  if (bug == Bug::warp_lockstep) __syncthreads();  // only so that partial[0] is final for everyone
  const float inv_norm = 1.f / sqrtf(1.f + partial[0]);
  if (bug == Bug::unwritten_row && row == rows / 2) return;
  const int end = bug == Bug::off_by_one ? cols + 1 : cols;
  for (int c = tid; c < end; c += blockDim.x) out[row * cols + c] = x[row * cols + c] * inv_norm;
}

template <Bug bug>
void launch_row_scale(const float* x, float* out, int rows, int cols, int threads) {
  xlstm_sim::launch(dim3(rows), dim3(threads), threads * sizeof(float),
                    [&] { row_scale_kernel<bug>(x, out, rows, cols); });
}

// Returns 0, or 1 with the emulation's error printed to stderr.
extern "C" int run_row_scale(int bug, const float* x, float* out, int rows, int cols, int threads) {
  try {
    switch (static_cast<Bug>(bug)) {
      case Bug::none: launch_row_scale<Bug::none>(x, out, rows, cols, threads); break;
      case Bug::off_by_one: launch_row_scale<Bug::off_by_one>(x, out, rows, cols, threads); break;
      case Bug::missing_barrier: launch_row_scale<Bug::missing_barrier>(x, out, rows, cols, threads); break;
      case Bug::unwritten_row: launch_row_scale<Bug::unwritten_row>(x, out, rows, cols, threads); break;
      case Bug::warp_lockstep: launch_row_scale<Bug::warp_lockstep>(x, out, rows, cols, threads); break;
      default: throw std::invalid_argument("unknown bug");
    }
  } catch (const std::exception& e) {
    fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
