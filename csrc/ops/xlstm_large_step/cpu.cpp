// xlstm_large_block_step and xlstm_large_head on the CPU: the checks, then the stages in order
// over all batch rows: each product one pass over its weights split over the threads
// (skinny_linear; a prompt's head a GEMM), the cell parallel over (batch, head) rows once its state
// is large, the elementwise rows on the caller's thread (a few thousand features; the logits' norm
// and cap over threads).
#include "cpu/vector_math.h"  // first: before anything declares the math functions

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "common/checks.h"
#include "common/op_types.h"
#include "common/registration.h"
#include "cpu/huge_pages.h"
#include "ops/skinny_linear/parallel.h"
#include "ops/xlstm_large_step/math.h"

namespace xlstm {
namespace {

constexpr const char* kOp = "xlstm_large_block_step";
constexpr const char* kHeadOp = "xlstm_large_head";
// Up to this many rows skinny_linear beats the BLAS GEMM (components/linear.py, SKINNY_MAX_ROWS).
constexpr int64_t kSkinnyMaxRows = 16;

// The steps' leading input x (B, D): a CPU tensor, float32 or float64 (the dtype of the rest).
void check_x(const Tensor& x, const char* op) {
  check_rank(x, op, "x", 2, "[B, D]");
  TORCH_CHECK(x.device().is_cpu(), op, ": x must be a CPU tensor (the op has no CUDA kernel), got ", x.device());
  const at::ScalarType dt = x.scalar_type();
  TORCH_CHECK(dt == at::kFloat || dt == at::kDouble, op, ": x must be float32 or float64, got ", dt);
  check_tensor(x, op, "x", {x.size(0), x.size(1)}, dt, x.device(), "[B, D]");
}

// An eps (>= 0) or a soft cap (> 0, or None: no cap), finite.
void check_constant(double value, const char* op, const char* name) {
  TORCH_CHECK(value >= 0.0 && std::isfinite(value), op, ": ", name, " must be finite and >= 0, got ", value);
}
void check_cap(std::optional<double> cap, const char* op, const char* name) {
  TORCH_CHECK(!cap.has_value() || (*cap > 0.0 && std::isfinite(*cap)), op, ": ", name,
              " must be positive and finite, or None, got ", cap.value_or(0.0));
}

// A weight of `rows` x `cols` in x's dtype, row-major (skinny_linear streams its rows).
void check_weight(const Tensor& w, const char* op, const char* name, int64_t rows, int64_t cols, const Tensor& x,
                  const char* like) {
  check_tensor(w, op, name, {rows, cols}, x.scalar_type(), x.device(), like);
  TORCH_CHECK(w.stride(1) == 1 || cols == 1, op, ": ", name,
              " must be row-major (unit stride along in_features), got strides ", w.strides());
}

// A product given as one weight or as `parts` weights of the rows in `part_rows` (the single weight
// mode's separate maps, whose rows in order are the fused weight's). Returns the total rows.
int64_t check_row_parts(at::TensorList weights, const char* name, std::initializer_list<int64_t> part_rows,
                        int64_t cols, const Tensor& x, const char* like) {
  int64_t total = 0;
  for (int64_t r : part_rows) total += r;
  TORCH_CHECK(weights.size() == 1 || weights.size() == part_rows.size(), kOp, ": ", name, " must hold 1 weight (",
              total, " rows) or ", part_rows.size(), " (their rows in order), got ", weights.size());
  if (weights.size() == 1) {
    check_weight(weights[0], kOp, name, total, cols, x, like);
  } else {
    size_t j = 0;
    for (int64_t r : part_rows) check_weight(weights[j++], kOp, name, r, cols, x, like);
  }
  return total;
}

struct BlockSizes {
  int64_t B, D, NH, DK, DV, inner;
};

BlockSizes check_inputs(const Tensor& x, const Tensor& norm_mlstm_weight, at::TensorList qkvo_weights,
                        at::TensorList gate_weights, at::TensorList gate_biases, const Tensor& multihead_norm_weight,
                        const Tensor& out_weight, const Tensor& norm_ffn_weight, at::TensorList up_weights,
                        const Tensor& down_weight, const Tensor& C, const Tensor& n, const Tensor& m,
                        std::optional<double> gate_soft_cap, double norm_eps, double eps) {
  check_x(x, kOp);
  const at::ScalarType dt = x.scalar_type();
  const int64_t B = x.size(0), D = x.size(1);
  check_constant(norm_eps, kOp, "norm_eps");
  check_constant(eps, kOp, "eps");
  check_cap(gate_soft_cap, kOp, "gate_soft_cap");
  check_tensor(norm_mlstm_weight, kOp, "norm_mlstm_weight", {D}, dt, x.device(), "[D], x's dtype");
  check_tensor(norm_ffn_weight, kOp, "norm_ffn_weight", {D}, dt, x.device(), "[D], x's dtype");
  check_rank(multihead_norm_weight, kOp, "multihead_norm_weight", 1, "[NH * DHV]");
  const int64_t V = multihead_norm_weight.size(0);
  check_tensor(multihead_norm_weight, kOp, "multihead_norm_weight", {V}, dt, x.device(), "[NH * DHV], x's dtype");

  TORCH_CHECK(!gate_weights.empty() && gate_weights[0].defined() && gate_weights[0].dim() == 2, kOp,
              ": gate_weights must hold the i and f gates' weight [2 * NH, D] or two [NH, D]");
  const int64_t NH = gate_weights.size() == 1 ? gate_weights[0].size(0) / 2 : gate_weights[0].size(0);
  TORCH_CHECK(NH > 0 && V % NH == 0, kOp, ": gate_weights give NH = ", NH,
              " heads, which must divide multihead_norm_weight's NH * DHV = ", V);
  check_row_parts(gate_weights, "gate_weights", {NH, NH}, D, x, "the gates' rows, [D] columns like x");
  TORCH_CHECK(gate_biases.size() == gate_weights.size(), kOp, ": gate_biases must hold one bias per gate weight (",
              gate_weights.size(), "), got ", gate_biases.size());
  for (const Tensor& bias : gate_biases)
    check_tensor(bias, kOp, "gate_biases", {gate_weights.size() == 1 ? 2 * NH : NH}, dt, x.device(),
                 "the gate weights' rows");

  TORCH_CHECK(!qkvo_weights.empty() && qkvo_weights[0].defined() && qkvo_weights[0].dim() == 2, kOp,
              ": qkvo_weights must hold the q, k, v, o weight [2 * qk_dim + 2 * v_dim, D] or the four");
  const int64_t QK = qkvo_weights.size() == 1 ? (qkvo_weights[0].size(0) - 2 * V) / 2 : qkvo_weights[0].size(0);
  TORCH_CHECK(QK > 0 && QK % NH == 0, kOp, ": qkvo_weights give qk_dim = ", QK, ", which NH = ", NH,
              " heads must divide");
  check_row_parts(qkvo_weights, "qkvo_weights", {QK, QK, V, V}, D, x, "q, k, v, o rows, [D] columns like x");
  check_weight(out_weight, kOp, "out_weight", D, V, x, "[D, NH * DHV]");
  check_rank(down_weight, kOp, "down_weight", 2, "[D, inner]");
  const int64_t inner = down_weight.size(1);
  check_weight(down_weight, kOp, "down_weight", D, inner, x, "[D, inner]");
  check_row_parts(up_weights, "up_weights", {inner, inner}, D, x, "the SwiGLU's gate then up rows, [D] columns");

  const int64_t DK = QK / NH, DV = V / NH;
  check_tensor(C, kOp, "state C", {B, NH, DK, DV}, dt, x.device(), "[B, NH, DHQK, DHV], x's dtype");
  check_tensor(n, kOp, "state n", {B, NH, DK}, dt, x.device(), "[B, NH, DHQK], x's dtype");
  check_tensor(m, kOp, "state m", {B, NH}, dt, x.device(), "[B, NH], x's dtype");
  return {B, D, NH, DK, DV, inner};
}

// The params of a product of x (M rows, x_stride apart) by each weight of `weights`, writing the
// columns of `y` (rows y_stride apart) in order; biases: one per weight, or none.
template <typename T>
std::vector<SkinnyLinearParams<T>> product(at::TensorList weights, at::TensorList biases, const T* x,
                                           int64_t x_stride, int64_t M, T* y, int64_t y_stride) {
  std::vector<SkinnyLinearParams<T>> parts(weights.size());
  int64_t column = 0;
  for (size_t j = 0; j < weights.size(); ++j) {
    SkinnyLinearParams<T>& p = parts[j];
    p.x = x, p.weight = weights[j].data_ptr<T>(), p.bias = biases.empty() ? nullptr : biases[j].data_ptr<T>();
    p.y = y + column;
    p.M = M, p.N = weights[j].size(0), p.K = weights[j].size(1);
    p.x_stride = x_stride, p.weight_stride = weights[j].stride(0), p.y_stride = y_stride;
    column += p.N;
  }
  return parts;
}

template <typename T>
void run_product(const std::vector<SkinnyLinearParams<T>>& parts) {
  skinny_linear_parallel(parts.data(), int64_t(parts.size()));
}

}  // namespace

Tensors4 xlstm_large_block_step_cpu(const Tensor& x_in, const Tensor& norm_mlstm_weight, at::TensorList qkvo_weights,
                                    at::TensorList gate_weights, at::TensorList gate_biases,
                                    const Tensor& multihead_norm_weight, const Tensor& out_weight,
                                    const Tensor& norm_ffn_weight, at::TensorList up_weights,
                                    const Tensor& down_weight, const Tensor& C_in, const Tensor& n_in,
                                    const Tensor& m_in, std::optional<double> gate_soft_cap, double norm_eps,
                                    double eps) {
  const BlockSizes s = check_inputs(x_in, norm_mlstm_weight, qkvo_weights, gate_weights, gate_biases,
                                    multihead_norm_weight, out_weight, norm_ffn_weight, up_weights, down_weight, C_in,
                                    n_in, m_in, gate_soft_cap, norm_eps, eps);
  const int64_t B = s.B, D = s.D, NH = s.NH, V = NH * s.DV, width = 2 * NH * s.DK + 2 * V;
  const Tensor x = x_in.contiguous(), C = C_in.contiguous(), n = n_in.contiguous(), m = m_in.contiguous();
  const Tensor norm_mlstm = norm_mlstm_weight.contiguous(), norm_ffn = norm_ffn_weight.contiguous();
  const Tensor head_norm = multihead_norm_weight.contiguous();
  std::vector<Tensor> biases;
  for (const Tensor& bias : gate_biases) biases.push_back(bias.contiguous());
  const auto o = x.options();
  Tensor y = at::empty({B, D}, o), C_new = at::empty(C.sizes(), o), n_new = at::empty(n.sizes(), o),
         m_new = at::empty(m.sizes(), o), h = at::empty({B, V}, o);
  Tensor scratch = at::empty({B * (D + width + 2 * NH + 2 * s.inner + D)}, o);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), kOp, [&] {
    using T = scalar_t;
    XlstmLargeBlockStepParams<T> p{};
    p.B = B, p.D = D, p.NH = NH, p.DV = s.DV, p.inner = s.inner, p.qkvo_width = width;
    p.x = x.data_ptr<T>();
    p.norm_mlstm_weight = norm_mlstm.data_ptr<T>();
    p.multihead_norm_weight = head_norm.data_ptr<T>();
    p.norm_ffn_weight = norm_ffn.data_ptr<T>();
    p.norm_eps = T(norm_eps);
    p.gate_soft_cap = gate_soft_cap.has_value() ? T(*gate_soft_cap) : T(0);
    p.normed = scratch.data_ptr<T>();
    p.qkvo = p.normed + B * D;
    p.gates = p.qkvo + B * width;
    p.up = p.gates + B * 2 * NH;
    T* down = p.up + B * 2 * s.inner;  // the SwiGLU's output before the residual
    p.y = y.data_ptr<T>();
    MlstmStepParams<T, T>& cell = p.cell;
    cell.batch = B, cell.heads = NH, cell.dqk = s.DK, cell.dv = s.DV;
    cell.q = {p.qkvo, width, s.DK};
    cell.k = {p.qkvo + NH * s.DK, width, s.DK};
    cell.v = {p.qkvo + 2 * NH * s.DK, width, s.DV};
    cell.i = {p.gates, 2 * NH, 1};
    cell.f = {p.gates + NH, 2 * NH, 1};
    cell.C = C.data_ptr<T>(), cell.n = n.data_ptr<T>(), cell.m = m.data_ptr<T>();
    cell.scale = T(1) / std::sqrt(T(s.DK));
    cell.eps = T(eps);
    cell.h = h.data_ptr<T>();
    cell.C_new = C_new.data_ptr<T>(), cell.n_new = n_new.data_ptr<T>(), cell.m_new = m_new.data_ptr<T>();
    namespace block = xlstm_large_block;

    for (int64_t b = 0; b < B; ++b)
      block::rms_norm_row(p.x + b * D, p.norm_mlstm_weight, D, p.norm_eps, p.normed + b * D);
    run_product(product<T>(qkvo_weights, {}, p.normed, D, B, p.qkvo, width));
    run_product(product<T>(gate_weights, biases, p.normed, D, B, p.gates, 2 * NH));
    for (int64_t b = 0; b < B; ++b) block::soft_cap_row(p.gates + b * 2 * NH, 2 * NH, p.gate_soft_cap);
    // A thread's share of the cell at least 64 KiB of state, so that small heads stay on one thread.
    const int64_t grain = std::max<int64_t>(1, (64 << 10) / (s.DK * s.DV * int64_t(sizeof(T))));
    at::parallel_for(0, B * NH, grain, [&](int64_t r0, int64_t r1) {
      std::vector<T> work(2 * s.DV);
      for (int64_t r = r0; r < r1; ++r) mlstm_step_fwd_row(cell, r / NH, r % NH, work.data());
    });
    for (int64_t b = 0; b < B; ++b) block::gated_head_norm_row(p, b);
    run_product(product<T>({out_weight}, {}, cell.h, V, B, p.y, D));
    for (int64_t j = 0; j < B * D; ++j) p.y[j] += p.x[j];

    for (int64_t b = 0; b < B; ++b) block::rms_norm_row(p.y + b * D, p.norm_ffn_weight, D, p.norm_eps, p.normed + b * D);
    run_product(product<T>(up_weights, {}, p.normed, D, B, p.up, 2 * s.inner));
    for (int64_t b = 0; b < B; ++b) block::swiglu_row(p, b);
    run_product(product<T>({down_weight}, {}, p.up, 2 * s.inner, B, down, D));
    for (int64_t j = 0; j < B * D; ++j) p.y[j] += down[j];
  });
  return {y, C_new, n_new, m_new};
}

Tensor xlstm_large_head_cpu(const Tensor& x_in, const Tensor& norm_weight, const Tensor& head_weight, double norm_eps,
                            std::optional<double> logit_soft_cap) {
  const char* op = kHeadOp;
  check_x(x_in, op);
  const at::ScalarType dt = x_in.scalar_type();
  const int64_t rows = x_in.size(0), D = x_in.size(1);
  check_constant(norm_eps, op, "norm_eps");
  check_cap(logit_soft_cap, op, "logit_soft_cap");
  check_tensor(norm_weight, op, "norm_weight", {D}, dt, x_in.device(), "[D], x's dtype");
  check_rank(head_weight, op, "head_weight", 2, "[vocab_size, D]");
  const int64_t V = head_weight.size(0);
  check_weight(head_weight, op, "head_weight", V, D, x_in, "[vocab_size, D], x's dtype");
  const Tensor x = x_in.contiguous(), norm = norm_weight.contiguous();
  Tensor logits = empty_cpu_large_output({rows, V}, x.options()), normed = at::empty({rows, D}, x.options());
  AT_DISPATCH_FLOATING_TYPES(dt, kHeadOp, [&] {
    using T = scalar_t;
    at::parallel_for(0, rows, std::max<int64_t>(1, (16 << 10) / std::max<int64_t>(D, 1)), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        xlstm_large_block::rms_norm_row(x.data_ptr<T>() + r * D, norm.data_ptr<T>(), D, T(norm_eps),
                                        normed.data_ptr<T>() + r * D);
    });
    // A decode step's few rows stream the head once (skinny_linear); a prompt's are a GEMM.
    if (rows <= kSkinnyMaxRows)
      run_product(product<T>({head_weight}, {}, normed.data_ptr<T>(), D, rows, logits.data_ptr<T>(), V));
    else
      at::mm_out(logits, normed, head_weight.t());
    const T cap = logit_soft_cap.has_value() ? T(*logit_soft_cap) : T(0);
    T* out = logits.data_ptr<T>();
    at::parallel_for(0, rows * V, 1 << 14, [&](int64_t j0, int64_t j1) {
      xlstm_large_block::soft_cap_row(out + j0, j1 - j0, cap);
    });
  });
  return logits;
}

}  // namespace xlstm

XLSTM_CPU_KERNELS(m) {
  m.impl("xlstm_large_block_step", &xlstm::xlstm_large_block_step_cpu);
  m.impl("xlstm_large_head", &xlstm::xlstm_large_head_cpu);
}
