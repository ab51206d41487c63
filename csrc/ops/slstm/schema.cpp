// The slstm op's schemas (the forward and its backward); the kernel files register the implementations.
#include "common/registration.h"

XLSTM_OP_SCHEMAS(m) {
  m.def(
      "slstm_forward(Tensor x_gates, Tensor R, Tensor b, Tensor initial, bool save_trace=True) "
      "-> (Tensor, Tensor, Tensor)");
  m.def(
      "slstm_backward(Tensor dh, Tensor d_last, Tensor x_gates, Tensor R, Tensor b, Tensor trace, bool[4] needs) "
      "-> (Tensor, Tensor, Tensor, Tensor)");
}
