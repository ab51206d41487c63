// The sLSTM kernels for c10::BFloat16 inputs (launch_template.cuh).
#include <c10/util/BFloat16.h>

#include "ops/slstm/launch_template.cuh"

using namespace xlstm;
XLSTM_SLSTM_INSTANTIATE_LAUNCHES(c10::BFloat16)
