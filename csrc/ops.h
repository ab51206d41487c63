// Entry points registered in registration.cpp (schemas there). `_cuda` ones are built from the .cu
// sources: by nvcc for the GPU, or by g++ for the host emulation module.
#pragma once

#include <ATen/ATen.h>

#include <tuple>

namespace xlstm {

using Tensor = at::Tensor;
using Tensors4 = std::tuple<Tensor, Tensor, Tensor, Tensor>;
using Tensors8 = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>;

#define XLSTM_MLSTM_STEP_DECLARE(suffix)                                                                       \
  Tensors4 mlstm_step_##suffix(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& i,               \
                               const Tensor& f, const Tensor& C, const Tensor& n, const Tensor& m, double eps);  \
  Tensors8 mlstm_step_backward_##suffix(const Tensor& dh, const Tensor& dC_new, const Tensor& dn_new,           \
                                        const Tensor& dm_new, const Tensor& q, const Tensor& k, const Tensor& v, \
                                        const Tensor& i, const Tensor& f, const Tensor& C, const Tensor& n,      \
                                        const Tensor& m, double eps);

XLSTM_MLSTM_STEP_DECLARE(cpu)
XLSTM_MLSTM_STEP_DECLARE(cuda)

#undef XLSTM_MLSTM_STEP_DECLARE

}  // namespace xlstm
