#include "cpu_vector_math.h"  // first: before anything declares the math functions

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <vector>

#include "ops.h"
#include "slstm_binding.h"

namespace xlstm {
namespace {

constexpr int64_t kCpuBatchTile = 8;

// Runs fn(head, first batch row, rows) over (head, batch tile) pairs in parallel.
template <typename Fn>
void for_each_tile(const SlstmInputs& in, const Fn& fn) {
  const int64_t tiles = (in.B + kCpuBatchTile - 1) / kCpuBatchTile;
  at::parallel_for(0, in.NH * tiles, 1, [&](int64_t begin, int64_t end) {
    for (int64_t w = begin; w < end; ++w) {
      const int64_t b0 = (w % tiles) * kCpuBatchTile;
      fn(w / tiles, b0, std::min(kCpuBatchTile, in.B - b0));
    }
  });
}

}  // namespace

Tensors3 slstm_forward_cpu(const Tensor& x, const Tensor& R, const Tensor& b, const Tensor& initial,
                            bool save_trace) {
  const SlstmInputs in = slstm_inputs(x, R, b, initial, "slstm_forward", at::kCPU, true);
  auto [h, trace] = slstm_forward_outputs(in, save_trace, empty_cpu_output);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, in.x.scalar_type(), "slstm_forward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    SlstmParams<scalar_t, acc_t> p;
    fill_slstm_params(p, in, trace);
    p.h_out = h.data_ptr<scalar_t>();
    for_each_tile(in, [&](int64_t h, int64_t b0, int64_t rows) {
      std::vector<acc_t> raw(rows * 4 * in.DH);
      slstm_fwd_tile(p, h, b0, rows, raw.data());
    });
  });
  return slstm_forward_result(in, h, trace);
}

Tensors4 slstm_backward_cpu(const Tensor& dh, const Tensor& d_last, const Tensor& x, const Tensor& R,
                            const Tensor& b, const Tensor& trace) {
  const char* op = "slstm_backward";
  const SlstmInputs in = slstm_inputs(x, R, b, trace.narrow(0, 0, 4).select(2, 0), op, at::kCPU, true);
  const SlstmBackwardTensors t = slstm_backward_tensors(in, dh, d_last, trace, op, empty_cpu_output);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, in.x.scalar_type(), "slstm_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto p = slstm_bwd_params<scalar_t, acc_t>(in, t);
    for_each_tile(in, [&](int64_t h, int64_t b0, int64_t rows) {
      std::vector<acc_t> work(3 * rows * in.DH);
      slstm_bwd_tile(p, h, b0, rows, work.data());
    });
  });
  return slstm_backward_result(in, t, R, b);
}

}  // namespace xlstm
