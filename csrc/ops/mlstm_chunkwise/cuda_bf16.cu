// The chunkwise mLSTM kernels for c10::BFloat16 inputs (launch_template.cuh).
#include <c10/util/BFloat16.h>

#include "ops/mlstm_chunkwise/launch_template.cuh"

using namespace xlstm;
XLSTM_MLSTM_CHUNKWISE_INSTANTIATE_LAUNCHES(c10::BFloat16)
