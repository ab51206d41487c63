// Tensor side of the mLSTM step shared by the CPU and CUDA entry points: validation, output
// allocation and the params structs the kernels read.
// Entry points (mlstm_step_{cpu,cuda}): (h, C_new, n_new, m_new); the backward: the gradients of
// (q, k, v, i, f, C, n, m).
#pragma once

#include <ATen/ATen.h>

#include <tuple>

#include "common/checks.h"
#include "common/op_types.h"
#include "ops/mlstm_step/math.h"

namespace xlstm {

struct MlstmStepInputs {
  at::Tensor q, k, v, i, f, C, n, m;
  int64_t B, NH, DQK, DV;
};

// Validates the forward inputs (see python_ref.mlstm_step for their meaning).
inline MlstmStepInputs mlstm_step_inputs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                         const at::Tensor& i, const at::Tensor& f, const at::Tensor& C,
                                         const at::Tensor& n, const at::Tensor& m, double eps, const char* op,
                                         at::DeviceType device_type, bool float64_ok) {
  check_rank(q, op, "q", 3, "[B, NH, DHQK]");
  check_leading_input(q, op, "q", device_type, float64_ok);
  TORCH_CHECK(eps >= 0.0 && std::isfinite(eps), op, ": eps must be finite and >= 0, got ", eps);
  const int64_t B = q.size(0), NH = q.size(1), DQK = q.size(2);
  check_rank(v, op, "v", 3, "[B, NH, DHV]");
  const int64_t DV = v.size(2);
  const at::ScalarType dt = q.scalar_type(), st = state_dtype(dt);
  const at::Device dev = q.device();
  check_tensor(q, op, "q", {B, NH, DQK}, dt, dev, "[B, NH, DHQK]");
  check_tensor(k, op, "k", {B, NH, DQK}, dt, dev, "like q");
  check_tensor(v, op, "v", {B, NH, DV}, dt, dev, "[B, NH, DHV] with q's B and NH, dtype of q");
  check_tensor(i, op, "i", {B, NH}, dt, dev, "[B, NH], dtype of q");
  check_tensor(f, op, "f", {B, NH}, dt, dev, "[B, NH], dtype of q");
  check_tensor(C, op, "state C", {B, NH, DQK, DV}, st, dev, "[B, NH, DHQK, DHV], float32 state");
  check_tensor(n, op, "state n", {B, NH, DQK}, st, dev, "[B, NH, DHQK], float32 state");
  check_tensor(m, op, "state m", {B, NH}, st, dev, "[B, NH], float32 state");
  return {unit_last_stride(q), unit_last_stride(k), unit_last_stride(v), i, f,
          C.contiguous(), n.contiguous(), m.contiguous(), B, NH, DQK, DV};
}

template <typename T>
RowInput<T> row_input(const at::Tensor& t) {
  return {t.data_ptr<T>(), t.stride(0), t.stride(1)};
}

template <typename scalar_t, typename acc_t>
void mlstm_step_fill_params(MlstmStepParams<scalar_t, acc_t>& p, const MlstmStepInputs& in, double eps) {
  p.batch = in.B;
  p.heads = in.NH;
  p.dqk = in.DQK;
  p.dv = in.DV;
  p.q = row_input<scalar_t>(in.q);
  p.k = row_input<scalar_t>(in.k);
  p.v = row_input<scalar_t>(in.v);
  p.i = row_input<scalar_t>(in.i);
  p.f = row_input<scalar_t>(in.f);
  p.C = in.C.data_ptr<acc_t>();
  p.n = in.n.data_ptr<acc_t>();
  p.m = in.m.data_ptr<acc_t>();
  p.scale = acc_t(1) / std::sqrt(acc_t(in.DQK));
  p.eps = acc_t(eps);
}

using MlstmStepOutputs = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;  // h, C, n, m

inline MlstmStepOutputs mlstm_step_outputs(const MlstmStepInputs& in, OutputAllocator alloc) {
  return {alloc({in.B, in.NH, in.DV}, in.q.options()), alloc(in.C.sizes(), in.C.options()),
          alloc(in.n.sizes(), in.n.options()), alloc(in.m.sizes(), in.m.options())};
}

template <typename scalar_t, typename acc_t>
MlstmStepParams<scalar_t, acc_t> mlstm_step_fwd_params(const MlstmStepInputs& in, double eps,
                                                       const MlstmStepOutputs& out) {
  MlstmStepParams<scalar_t, acc_t> p;
  mlstm_step_fill_params(p, in, eps);
  p.h = std::get<0>(out).data_ptr<scalar_t>();
  p.C_new = std::get<1>(out).data_ptr<acc_t>();
  p.n_new = std::get<2>(out).data_ptr<acc_t>();
  p.m_new = std::get<3>(out).data_ptr<acc_t>();
  return p;
}

// Gradients of the outputs, checked against the forward inputs; made contiguous.
struct MlstmStepGrads {
  at::Tensor dh, dC, dn, dm;
};

inline MlstmStepGrads mlstm_step_grads(const MlstmStepInputs& in, const at::Tensor& dh, const at::Tensor& dC,
                                       const at::Tensor& dn, const at::Tensor& dm, const char* op) {
  const at::Device dev = in.q.device();
  check_tensor(dh, op, "grad h", {in.B, in.NH, in.DV}, in.q.scalar_type(), dev, "like h");
  check_tensor(dC, op, "grad C", {in.B, in.NH, in.DQK, in.DV}, in.C.scalar_type(), dev, "like state C");
  check_tensor(dn, op, "grad n", {in.B, in.NH, in.DQK}, in.n.scalar_type(), dev, "like state n");
  check_tensor(dm, op, "grad m", {in.B, in.NH}, in.m.scalar_type(), dev, "like state m");
  return {dh.contiguous(), dC.contiguous(), dn.contiguous(), dm.contiguous()};
}

// dq, dk, dv, di, df, dC, dn, dm
using MlstmStepInputGrads =
    std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

inline MlstmStepInputGrads mlstm_step_input_grads(const MlstmStepInputs& in, OutputAllocator alloc) {
  const auto o = in.q.options();
  return {alloc({in.B, in.NH, in.DQK}, o), alloc({in.B, in.NH, in.DQK}, o),  alloc({in.B, in.NH, in.DV}, o),
          alloc({in.B, in.NH}, o),         alloc({in.B, in.NH}, o),          alloc(in.C.sizes(), in.C.options()),
          alloc(in.n.sizes(), in.n.options()), alloc(in.m.sizes(), in.m.options())};
}

template <typename scalar_t, typename acc_t>
MlstmStepBwdParams<scalar_t, acc_t> mlstm_step_bwd_params(const MlstmStepInputs& in, double eps,
                                                          const MlstmStepGrads& g, const MlstmStepInputGrads& out) {
  MlstmStepBwdParams<scalar_t, acc_t> p;
  mlstm_step_fill_params(p, in, eps);
  p.dh = g.dh.data_ptr<scalar_t>();
  p.dC_new = g.dC.data_ptr<acc_t>();
  p.dn_new = g.dn.data_ptr<acc_t>();
  p.dm_new = g.dm.data_ptr<acc_t>();
  p.dq = std::get<0>(out).data_ptr<scalar_t>();
  p.dk = std::get<1>(out).data_ptr<scalar_t>();
  p.dv_ = std::get<2>(out).data_ptr<scalar_t>();
  p.di = std::get<3>(out).data_ptr<scalar_t>();
  p.df = std::get<4>(out).data_ptr<scalar_t>();
  p.dC = std::get<5>(out).data_ptr<acc_t>();
  p.dn = std::get<6>(out).data_ptr<acc_t>();
  p.dm = std::get<7>(out).data_ptr<acc_t>();
  return p;
}

}  // namespace xlstm
