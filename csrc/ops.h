// Entry points registered in registration.cpp (schemas there). `_cuda` ones are built from the .cu
// sources: by nvcc for the GPU, or by g++ for the host emulation module.
#pragma once

#include <ATen/ATen.h>

#include <tuple>

namespace xlstm {

using Tensor = at::Tensor;
using Tensors3 = std::tuple<Tensor, Tensor, Tensor>;
using Tensors4 = std::tuple<Tensor, Tensor, Tensor, Tensor>;
using Tensors5 = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor>;
using Tensors8 = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>;

#define XLSTM_MLSTM_STEP_DECLARE(suffix)                                                                       \
  Tensors4 mlstm_step_##suffix(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& i,               \
                               const Tensor& f, const Tensor& C, const Tensor& n, const Tensor& m, double eps);  \
  Tensors8 mlstm_step_backward_##suffix(const Tensor& dh, const Tensor& dC_new, const Tensor& dn_new,           \
                                        const Tensor& dm_new, const Tensor& q, const Tensor& k, const Tensor& v, \
                                        const Tensor& i, const Tensor& f, const Tensor& C, const Tensor& n,      \
                                        const Tensor& m, double eps);

// sLSTM over a sequence: (h, last state (4, B, NH, DH), trace (8, B, S + 1 or 2, NH, DH): the states
// and pre-activations of every step if save_trace, else of the last, see slstm.h), and its
// backward: (dx, dR, db, d_initial).
#define XLSTM_SLSTM_DECLARE(suffix)                                                                    \
  Tensors3 slstm_forward_##suffix(const Tensor& x, const Tensor& R, const Tensor& b, const Tensor& initial,  \
                                  bool save_trace);                                                         \
  Tensors4 slstm_backward_##suffix(const Tensor& dh, const Tensor& d_last, const Tensor& x, const Tensor& R,  \
                                   const Tensor& b, const Tensor& trace);

XLSTM_MLSTM_STEP_DECLARE(cpu)
XLSTM_MLSTM_STEP_DECLARE(cuda)
XLSTM_SLSTM_DECLARE(cpu)
XLSTM_SLSTM_DECLARE(cuda)

#undef XLSTM_MLSTM_STEP_DECLARE
#undef XLSTM_SLSTM_DECLARE

// mLSTM chunkwise: (h, C_T, n_T, m_T, then for the backward: the state at every chunk start
// C_starts (B, NH, chunks, DQK, DV), n_starts, and m and q·n of every step, m_all and qn_all
// (B, NH, S)); its backward: (dq, dk, dv, di, df, dC0, dn0, dm0).
#define XLSTM_MLSTM_CHUNKWISE_DECLARE(suffix)                                                                        \
  Tensors8 mlstm_chunkwise_forward_##suffix(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& i,        \
                                            const Tensor& f, const Tensor& C0, const Tensor& n0, const Tensor& m0,     \
                                            int64_t chunk_size, double eps);                                            \
  Tensors8 mlstm_chunkwise_backward_##suffix(                                                                           \
      const Tensor& dh, const Tensor& dC_T, const Tensor& dn_T, const Tensor& dm_T, const Tensor& q, const Tensor& k,  \
      const Tensor& v, const Tensor& i, const Tensor& f, const Tensor& C0, const Tensor& n0, const Tensor& m0,          \
      const Tensor& h, const Tensor& C_T, const Tensor& n_T, const Tensor& C_starts, const Tensor& n_starts,             \
      const Tensor& m_all, const Tensor& qn_all, int64_t chunk_size, double eps);

XLSTM_MLSTM_CHUNKWISE_DECLARE(cpu)
XLSTM_MLSTM_CHUNKWISE_DECLARE(cuda)
#undef XLSTM_MLSTM_CHUNKWISE_DECLARE

// Causal depthwise conv over time + SiLU (causal_conv1d.h): y (B, S, D); its backward: (dx, d_weight,
// d_bias, d_initial).
#define XLSTM_CAUSAL_CONV_DECLARE(suffix)                                                                      \
  Tensor causal_conv1d_silu_##suffix(const Tensor& x, const Tensor& weight, const Tensor& bias,                 \
                                     const Tensor& initial);                                                    \
  Tensors4 causal_conv1d_silu_backward_##suffix(const Tensor& dy, const Tensor& x, const Tensor& weight,        \
                                                const Tensor& bias, const Tensor& initial);

XLSTM_CAUSAL_CONV_DECLARE(cpu)
XLSTM_CAUSAL_CONV_DECLARE(cuda)
#undef XLSTM_CAUSAL_CONV_DECLARE

// Headwise (block-diagonal) linear map (headwise_linear.h): y (B, heads, S, G*O / heads); its
// backward: (dx, dweight).
#define XLSTM_HEADWISE_DECLARE(suffix)                                                            \
  Tensor headwise_linear_##suffix(const Tensor& x, const Tensor& weight, int64_t heads);          \
  std::tuple<Tensor, Tensor> headwise_linear_backward_##suffix(const Tensor& dy, const Tensor& x, \
                                                               const Tensor& weight, int64_t heads);

XLSTM_HEADWISE_DECLARE(cpu)
XLSTM_HEADWISE_DECLARE(cuda)
#undef XLSTM_HEADWISE_DECLARE

// The mLSTM layer's output stage (mlstm_output_gate.h): y = (norm_weight h + skip x_conv) silu(z),
// (N, D); its backward: (dh, dx_conv, dz, d norm_weight, d skip).
#define XLSTM_OUTPUT_GATE_DECLARE(suffix)                                                                      \
  Tensor mlstm_output_gate_##suffix(const Tensor& h, const Tensor& x_conv, const Tensor& z,                   \
                                    const Tensor& norm_weight, const Tensor& skip);                           \
  Tensors5 mlstm_output_gate_backward_##suffix(const Tensor& dy, const Tensor& h, const Tensor& x_conv,       \
                                               const Tensor& z, const Tensor& norm_weight, const Tensor& skip);

XLSTM_OUTPUT_GATE_DECLARE(cpu)
XLSTM_OUTPUT_GATE_DECLARE(cuda)
#undef XLSTM_OUTPUT_GATE_DECLARE

// Which sLSTM kernel runs for head size dh on the current device: where it keeps R.
const char* slstm_cuda_path(int64_t dh, bool backward);

}  // namespace xlstm
