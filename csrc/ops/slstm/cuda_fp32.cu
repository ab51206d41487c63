// The sLSTM kernels for float inputs (launch_template.cuh).
#include "ops/slstm/launch_template.cuh"

using namespace xlstm;
XLSTM_SLSTM_INSTANTIATE_LAUNCHES(float)
