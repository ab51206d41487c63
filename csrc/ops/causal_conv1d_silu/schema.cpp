// The causal_conv1d_silu op's schemas (the forward and its backward); the kernel files register the implementations.
#include "common/registration.h"

XLSTM_OP_SCHEMAS(m) {
  m.def(
      "causal_conv1d_silu(Tensor x, Tensor weight, Tensor bias, Tensor initial) -> Tensor");
  m.def(
      "causal_conv1d_silu_backward(Tensor dy, Tensor x, Tensor weight, Tensor bias, Tensor initial) "
      "-> (Tensor, Tensor, Tensor, Tensor)");
}
