// The mlstm_step op's schemas (the forward and its backward); the kernel files register the implementations.
#include "common/registration.h"

XLSTM_OP_SCHEMAS(m) {
  m.def(
      "mlstm_step(Tensor q, Tensor k, Tensor v, Tensor i, Tensor f, Tensor C, Tensor n, Tensor m, float eps) "
      "-> (Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "mlstm_step_backward(Tensor dh, Tensor dC_new, Tensor dn_new, Tensor dm_new, Tensor q, Tensor k, Tensor v, "
      "Tensor i, Tensor f, Tensor C, Tensor n, Tensor m, float eps) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
}
