// The sLSTM kernel launches, one explicit instantiation per input dtype (cuda_<dtype>.cu), so that
// the kernel variants compile in parallel and apart from the ATen-side entry points (cuda.cu).
#pragma once

#include "common/kernel_launch.h"
#include "ops/slstm/math.h"
#include "ops/slstm/traits.h"

namespace xlstm {

template <typename scalar_t>
void slstm_forward_launch(const SlstmParams<scalar_t, float>& p, SlstmRPlace place, dim3 grid, dim3 block,
                          size_t smem_bytes, cudaStream_t stream);
template <typename scalar_t>
void slstm_backward_launch(const SlstmBwdParams<scalar_t, float>& p, SlstmRPlace place, dim3 grid, dim3 block,
                           size_t smem_bytes, cudaStream_t stream);

}  // namespace xlstm
