// The mlstm_layer_step op's schema (inference only: no backward); cpu.cpp registers the kernel.
#include "common/registration.h"

XLSTM_OP_SCHEMAS(m) {
  m.def(
      "mlstm_layer_step(Tensor up, Tensor conv_buffer, Tensor conv_weight, Tensor conv_bias, Tensor q_weight, "
      "Tensor k_weight, Tensor v_weight, Tensor? q_bias, Tensor? k_bias, Tensor? v_bias, Tensor gate_weight, "
      "Tensor gate_bias, Tensor C, Tensor n, Tensor m, Tensor norm_weight, Tensor skip, float norm_eps, float eps) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor)");
}
