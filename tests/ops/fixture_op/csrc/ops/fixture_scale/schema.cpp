// The fixture_scale op's schemas (the forward and its backward); the kernel files register the implementations.
#include "common/registration.h"

XLSTM_OP_SCHEMAS(m) {
  m.def("fixture_scale(Tensor x, Tensor w) -> Tensor");
  m.def("fixture_scale_backward(Tensor dy, Tensor x, Tensor w) -> (Tensor, Tensor)");
}
