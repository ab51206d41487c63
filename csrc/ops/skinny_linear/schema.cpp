// The skinny_linear op's schema (inference only: no backward); cpu.cpp registers the kernel.
#include "common/registration.h"

XLSTM_OP_SCHEMAS(m) { m.def("skinny_linear(Tensor x, Tensor weight, Tensor? bias) -> Tensor"); }
