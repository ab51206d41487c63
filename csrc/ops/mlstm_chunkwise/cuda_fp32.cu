// The chunkwise mLSTM kernels for float inputs (launch_template.cuh).
#include "ops/mlstm_chunkwise/launch_template.cuh"

using namespace xlstm;
XLSTM_MLSTM_CHUNKWISE_INSTANTIATE_LAUNCHES(float)
