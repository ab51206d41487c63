// One kernel source for nvcc and for the host emulation (csrc/sim): the few spellings that differ.
#pragma once

// XLSTM_STATIC_SHARED(float, partial, [64][2]) declares `__shared__ float partial[64][2]`; in the
// emulation a static registered once, so that it is poisoned at every block start, and rejected in
// a cluster launch, whose blocks would share it (GCC drops a section attribute on the statics of
// template instances, which would have needed no macro).
#if defined(XLSTM_SIM)
#include "sim/cuda_sim.h"
#define XLSTM_DYNAMIC_SHARED(type, name) type* name = static_cast<type*>(::xlstm_sim::dynamic_shared())
#define XLSTM_STATIC_SHARED(type, name, dims)                         \
  static type name dims;                                              \
  [[maybe_unused]] static const bool name##_poisoned_per_block_ =     \
      ::xlstm_sim::register_static_shared(&name, sizeof(name));       \
  [[maybe_unused]] const bool name##_outside_clusters_ = ::xlstm_sim::use_static_shared()
#elif defined(__CUDACC__)
// One untyped symbol: typed `extern __shared__` arrays in templates would clash between instances.
#define XLSTM_DYNAMIC_SHARED(type, name)                                  \
  extern __shared__ __align__(16) unsigned char xlstm_dynamic_shared_[]; \
  type* name = reinterpret_cast<type*>(xlstm_dynamic_shared_)
#define XLSTM_STATIC_SHARED(type, name, dims) __shared__ type name dims
#endif

#if defined(__CUDACC__) || defined(XLSTM_SIM)
#define XLSTM_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define XLSTM_HOST_DEVICE inline
#endif
