// The mlstm_output_gate op's schemas (the forward and its backward); the kernel files register the implementations.
#include "common/registration.h"

XLSTM_OP_SCHEMAS(m) {
  m.def(
      "mlstm_output_gate(Tensor h, Tensor x_conv, Tensor z, Tensor norm_weight, Tensor skip, float eps) -> Tensor");
  m.def(
      "mlstm_output_gate_backward(Tensor dy, Tensor h, Tensor x_conv, Tensor z, Tensor norm_weight, Tensor skip, "
      "float eps) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
}
