// The slstm_layer_step op's schema (inference only: no backward); cpu.cpp registers the kernel.
#include "common/registration.h"

XLSTM_OP_SCHEMAS(m) {
  m.def(
      "slstm_layer_step(Tensor x, Tensor? conv_buffer, Tensor? conv_weight, Tensor? conv_bias, Tensor gate_weight, "
      "Tensor R, Tensor b, Tensor h, Tensor c, Tensor n, Tensor m, Tensor norm_weight, float norm_eps) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
}
