// The sLSTM layer's generation step fused for the CPU (inference: no backward): the layer's parts,
// each through its op's math, on one token per batch row, instead of ~20 library calls whose
// dispatch costs more than their work.
//
//   x_conv = silu(causal conv of [buffer | x])  (causal_conv1d_silu; x itself without a conv)
//   x_gates = per head: i, f from x_conv, z, o from x (the gate projections, one block per head and source)
//   h, (h, c, n, m) = slstm(x_gates, R, b, state) over one step   (the slstm op's CPU loop)
//   y = norm(h) * norm_weight, norm: per head
//   buffer' = [buffer[1:] | x]
//
// The state layout is that of the parts' ops. No ATen types here.
#pragma once

#include <cstdint>

#include "ops/causal_conv1d_silu/math.h"
#include "ops/slstm/math.h"

namespace xlstm {

// One dtype T (float32 or float64) for inputs, weights and states. conv (width 0: no conv) reads
// the x rows with the buffer as its initial inputs and the weight transposed to (K, D); cell is
// the slstm op's params over one step: x_gates as its input, the trace (9, B, 2, NH, DH) scratch
// with the state in slot 0 (the step writes slot 1), h into y.
template <typename T>
struct SlstmLayerStepParams {
  CausalConv1dSiluParams<T, T> conv;
  SlstmParams<T, T> cell;
  const T* x;                // (B, D), rows conv.x_stride_b apart
  T* gate_weight_t;          // scratch (NH, 2, DH, 2 DH): per head and source (x_conv: i, f; x: z, o), the
                             // (2 DH, DH) block of the gate weight transposed
  const T* norm_weight;      // (D)
  T norm_eps;
  T *x_conv, *x_gates;       // scratch: (B, D) (with a conv), (B, NH, 4, DH)
  T* y;                      // (B, D)
  T* conv_buffer_new;        // (B, K - 1, D)
};

}  // namespace xlstm
