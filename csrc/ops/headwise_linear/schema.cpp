// The headwise_linear op's schemas (the forward and its backward); the kernel files register the implementations.
#include "common/registration.h"

XLSTM_OP_SCHEMAS(m) {
  m.def(
      "headwise_linear(Tensor x, Tensor weight, int heads=1) -> Tensor");
  m.def(
      "headwise_linear_backward(Tensor dy, Tensor x, Tensor weight, int heads=1) -> (Tensor, Tensor)");
}
