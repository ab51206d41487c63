// Tensor side of the sLSTM shared by the CPU and CUDA entry points. The sequence loops are the
// kernels'; dR, a matrix product over batch and time, is left to BLAS.
// Entry points (slstm_{forward,backward}_{cpu,cuda}): the forward returns (h, last state (4, B, NH,
// DH), trace (9, B, S + 1 or 2, NH, DH): the states and gate activations of every step if save_trace,
// else of the latest, see math.h); the backward (dx, dR, db, d_initial).
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <tuple>

#include "common/checks.h"
#include "common/op_types.h"
#include "ops/slstm/math.h"

namespace xlstm {

struct SlstmInputs {
  at::Tensor x;        // (B, S, NH, 4, DH), each head's (4, DH) dense
  at::Tensor R, RT;    // (NH, DH, 4*DH), (NH, 4*DH, DH) in the state dtype, contiguous
  at::Tensor bias;     // (NH, 4*DH) in the state dtype
  at::Tensor initial;  // (4, B, NH, DH) in the state dtype
  int64_t B, S, NH, DH;
};

inline SlstmInputs slstm_inputs(const at::Tensor& x, const at::Tensor& R, const at::Tensor& b,
                                const at::Tensor& initial, const char* op, at::DeviceType device_type,
                                bool float64_ok) {
  TORCH_CHECK(x.defined() && x.dim() == 5 && x.size(3) == 4, op,
              ": x_gates must have shape [B, S, NH, 4, DH] (gates i, f, z, o), got ",
              x.defined() ? x.sizes() : at::IntArrayRef{});
  check_leading_input(x, op, "x_gates", device_type, float64_ok);
  const int64_t B = x.size(0), S = x.size(1), NH = x.size(2), DH = x.size(4);
  const at::ScalarType st = state_dtype(x.scalar_type());
  const at::Device dev = x.device();
  check_tensor(x, op, "x_gates", {B, S, NH, 4, DH}, x.scalar_type(), dev, "[B, S, NH, 4, DH]");
  const at::ScalarType w = R.defined() && R.scalar_type() == x.scalar_type() ? x.scalar_type() : st;
  check_tensor(R, op, "R", {NH, DH, 4, DH}, w, dev, "[NH, DH, 4, DH], float32 or the dtype of x_gates");
  check_tensor(b, op, "b", {NH, 4, DH}, R.scalar_type(), dev, "[NH, 4, DH], dtype of R");
  check_tensor(initial, op, "initial state", {4, B, NH, DH}, st, dev, "(h, c, n, m) stacked, float32 state");
  const at::Tensor R_acc = R.to(st).reshape({NH, DH, 4 * DH}).contiguous();
  const bool dense = x.stride(4) == 1 && x.stride(3) == DH;  // per head; the kernels take the other strides
  return {dense ? x : x.contiguous(), R_acc, R_acc.transpose(1, 2).contiguous(),
          b.to(st).reshape({NH, 4 * DH}).contiguous(), initial.contiguous(), B, S, NH, DH};
}

template <typename scalar_t, typename acc_t>
void slstm_fill_params(SlstmParams<scalar_t, acc_t>& p, const SlstmInputs& in, const at::Tensor& trace) {
  p.batch = in.B;
  p.seq = in.S;
  p.heads = in.NH;
  p.dh = in.DH;
  p.x = in.x.data_ptr<scalar_t>();
  p.x_stride_b = in.x.stride(0);
  p.x_stride_t = in.x.stride(1);
  p.x_stride_h = in.x.stride(2);
  p.R = in.R.data_ptr<acc_t>();
  p.RT = in.RT.data_ptr<acc_t>();
  p.bias = in.bias.data_ptr<acc_t>();
  p.trace = trace.data_ptr<acc_t>();
  p.slots = trace.size(2);
}

// h (B, S, NH, DH) and the trace (9, B, slots, NH, DH, see math.h) with the initial state in
// place: every step's states when the backward pass will need them, else only the latest.
inline std::tuple<at::Tensor, at::Tensor> slstm_forward_outputs(const SlstmInputs& in, bool save_trace,
                                                                OutputAllocator alloc) {
  at::Tensor h = alloc({in.B, in.S, in.NH, in.DH}, in.x.options());
  at::Tensor trace = alloc({kSlstmTracePlanes, in.B, save_trace ? in.S + 1 : 2, in.NH, in.DH}, in.initial.options());
  trace.narrow(0, 0, 4).select(2, 0).copy_(in.initial);
  trace.narrow(0, 4, kSlstmTracePlanes - 4).select(2, 0).zero_();  // no gates before the first step
  return {h, trace};
}

// (h, last state (4, B, NH, DH), trace) once the kernel filled h and the trace.
inline std::tuple<at::Tensor, at::Tensor, at::Tensor> slstm_forward_result(const SlstmInputs& in, at::Tensor h,
                                                                           at::Tensor trace) {
  return {h, trace.narrow(0, 0, 4).select(2, in.S % trace.size(2)).clone(), trace};
}

struct SlstmBackwardTensors {
  at::Tensor trace, dh, d_last, d_raw, d_first;
};

// Checks the gradients and the trace; allocates d_raw and d_first.
inline SlstmBackwardTensors slstm_backward_tensors(const SlstmInputs& in, const at::Tensor& dh,
                                                   const at::Tensor& d_last, const at::Tensor& trace, const char* op,
                                                   OutputAllocator alloc) {
  const at::Device dev = in.x.device();
  const at::ScalarType st = in.initial.scalar_type();
  check_tensor(dh, op, "grad h", {in.B, in.S, in.NH, in.DH}, in.x.scalar_type(), dev, "like h");
  check_tensor(d_last, op, "grad of the last state", {4, in.B, in.NH, in.DH}, st, dev, "like the last state");
  check_tensor(trace, op, "trace", {kSlstmTracePlanes, in.B, in.S + 1, in.NH, in.DH}, st, dev,
               "as slstm_forward returned");
  return {trace.contiguous(), dh.contiguous(), d_last.contiguous(),
          alloc({in.B, in.S, in.NH, 4 * in.DH}, in.initial.options()),
          alloc({4, in.B, in.NH, in.DH}, in.initial.options())};
}

template <typename scalar_t, typename acc_t>
SlstmBwdParams<scalar_t, acc_t> slstm_bwd_params(const SlstmInputs& in, const SlstmBackwardTensors& t) {
  SlstmBwdParams<scalar_t, acc_t> p;
  slstm_fill_params(p, in, t.trace);
  p.d_h = t.dh.data_ptr<scalar_t>();
  p.d_last = t.d_last.data_ptr<acc_t>();
  p.d_raw = t.d_raw.data_ptr<acc_t>();
  p.d_first = t.d_first.data_ptr<acc_t>();
  return p;
}

// h[t-1] of every step, (B, S, NH, DH): the trace's states before each step.
inline at::Tensor slstm_h_prev(const SlstmInputs& in, const SlstmBackwardTensors& t) {
  return t.trace.select(0, 0).narrow(1, 0, in.S);
}

// The gradients the caller needs, of (x_gates, R, b, initial): the kernel's one sweep gives d_raw
// and d_initial either way; dR (a product as large as the forward's h R) and db are computed only
// where needed, and a gradient not needed is returned empty (shape [0]).
struct SlstmNeeds {
  bool x, R, b;
};
inline SlstmNeeds slstm_needs(std::array<bool, 4> needs) { return {needs[0], needs[1], needs[2]}; }

// (dx, dR, db, d_first) from the kernel's d_raw and dR (NH, DH, 4*DH, state dtype; undefined where R
// needs no gradient), the sum over batch and time of h[t-1]ᵀ d_raw[t]; db is the sum of d_raw.
inline std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> slstm_backward_result(
    const SlstmInputs& in, const SlstmBackwardTensors& t, const at::Tensor& dR_acc, const at::Tensor& R,
    const at::Tensor& b, SlstmNeeds needs) {
  const auto not_needed = [](const at::Tensor& like) { return at::empty({0}, like.options()); };
  const at::Tensor dx = needs.x ? t.d_raw.reshape(in.x.sizes()).to(in.x.scalar_type()) : not_needed(in.x);
  const at::Tensor dR = needs.R ? dR_acc.reshape(R.sizes()).to(R.scalar_type()) : not_needed(R);
  const at::Tensor db = needs.b ? t.d_raw.sum({0, 1}).reshape(b.sizes()).to(b.scalar_type()) : not_needed(b);
  t.d_first.select(0, 3).zero_();  // m is a constant: no gradient
  return {dx, dR, db, t.d_first};
}

#if defined(XLSTM_WITH_CUDA) || defined(XLSTM_SIM)
// Which sLSTM kernel runs for head size dh on the current device: where it keeps R (cuda.cu).
const char* slstm_cuda_path(int64_t dh, bool backward);
#endif

}  // namespace xlstm
