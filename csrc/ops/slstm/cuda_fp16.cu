// The sLSTM kernels for c10::Half inputs (launch_template.cuh).
#include <c10/util/Half.h>

#include "ops/slstm/launch_template.cuh"

using namespace xlstm;
XLSTM_SLSTM_INSTANTIATE_LAUNCHES(c10::Half)
