// The mLSTM layer's generation step between its up- and down-projection, fused for the CPU
// (inference: no backward): the layers' own parts, each through its op's math, on one token per
// batch row, instead of ~25 library calls whose dispatch costs more than their work.
//
//   x_m, z = the two halves of the up-projection
//   x_conv = silu(causal conv of [buffer | x_m])               (causal_conv1d_silu)
//   q, k = headwise(x_conv), v = headwise(x_m) (+ biases)      (headwise_linear)
//   i, f = gates(concat(q, k, v))                               (one linear map, 2 NH outputs)
//   h, (C, n, m) = mlstm_step(q, k, v, i, f, (C, n, m))          (mlstm_step)
//   out = mlstm_output_gate(norm(h), x_conv, z, norm_weight, skip), norm: per head, no scale
//   buffer' = [buffer[1:] | x_m]
//
// The state layout is that of the parts' ops. No ATen types here.
#pragma once

#include <cstdint>

#include "common/numerics.h"
#include "ops/causal_conv1d_silu/math.h"
#include "ops/mlstm_step/math.h"

namespace xlstm {

// One dtype T (float32 or float64) for inputs, weights and states. The parts' params structs are
// filled to read what the step computes: conv.x is the x_m half of up (rows x_stride_b apart),
// conv.initial the buffer, conv.weight the conv weight transposed to (K, inner); cell.q / k / v
// read the rows of qkv, cell.i / f those of gates, cell.h is out.
template <typename T>
struct MlstmLayerStepParams {
  CausalConv1dSiluParams<T, T> conv;
  MlstmStepParams<T, T> cell;
  int64_t qkv_block;                        // the headwise maps' block size
  const T *z;                               // the z half of up, rows conv.x_stride_b apart
  const T *q_weight, *k_weight, *v_weight;  // (inner / qkv_block, qkv_block, qkv_block)
  const T *q_bias, *k_bias, *v_bias;        // (inner) each, or all null
  const T *gate_weight, *gate_bias;         // (2 NH, 3 inner), (2 NH): i for the first NH rows, then f
  const T *norm_weight, *skip;              // (inner)
  T norm_eps;
  T *x_conv, *qkv, *gates;  // scratch, contiguous: (B, inner), (B, 3 inner), (B, 2 NH)
  T* out;                   // (B, inner): before the down-projection
  T* conv_buffer_new;       // (B, K - 1, inner)
};

}  // namespace xlstm
