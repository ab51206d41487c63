// Input validation shared by every entry point: each failure names the op and the argument.
#pragma once

#include <ATen/ATen.h>

#include <initializer_list>

namespace xlstm {

// `t` is defined and has `rank` dimensions, else an error naming the op, the argument and its
// expected shape (`shape`, e.g. "[B, S, D]"): the first check of an input whose sizes fix the others.
void check_rank(const at::Tensor& t, const char* op, const char* name, int64_t rank, const char* shape);

// Checks rank, sizes (-1: any), dtype and device of `t`; `like` names what fixed those sizes.
void check_tensor(const at::Tensor& t, const char* op, const char* name, std::initializer_list<int64_t> sizes,
                  at::ScalarType dtype, at::Device device, const char* like);

// The op's leading input `name` (which fixes the dtype and device of the rest) is on a device of
// `device_type` and in a dtype the kernels compute in: float32, bfloat16, float16, and float64 where
// `float64_ok`.
void check_leading_input(const at::Tensor& t, const char* op, const char* name, at::DeviceType device_type,
                         bool float64_ok);

// float32 states, float64 for float64 inputs on the CPU.
at::ScalarType state_dtype(at::ScalarType input_dtype);

// Allocates an entry point's outputs: at::empty on the CPU, NaN-poisoned in the emulation (common/launch.h).
using OutputAllocator = at::Tensor (*)(at::IntArrayRef sizes, const at::TensorOptions& options);
inline at::Tensor empty_cpu_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  return at::empty(sizes, options);
}

// The tensor with a unit stride in its last dimension (the kernels take row strides otherwise).
at::Tensor unit_last_stride(const at::Tensor& t);

}  // namespace xlstm
