// The xLSTM 7B inference ops' schemas (a decode step's block; the head over any rows), no backward;
// cpu.cpp registers the kernels.
#include "common/registration.h"

XLSTM_OP_SCHEMAS(m) {
  m.def(
      "xlstm_large_block_step(Tensor x, Tensor norm_mlstm_weight, Tensor[] qkvo_weights, Tensor[] gate_weights, "
      "Tensor[] gate_biases, Tensor multihead_norm_weight, Tensor out_weight, Tensor norm_ffn_weight, "
      "Tensor[] up_weights, Tensor down_weight, Tensor C, Tensor n, Tensor m, float? gate_soft_cap, float norm_eps, "
      "float eps) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("xlstm_large_head(Tensor x, Tensor norm_weight, Tensor head_weight, float norm_eps, float? logit_soft_cap) "
        "-> Tensor");
}
