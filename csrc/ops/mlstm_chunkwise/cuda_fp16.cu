// The chunkwise mLSTM kernels for c10::Half inputs (launch_template.cuh).
#include <c10/util/Half.h>

#include "ops/mlstm_chunkwise/launch_template.cuh"

using namespace xlstm;
XLSTM_MLSTM_CHUNKWISE_INSTANTIATE_LAUNCHES(c10::Half)
