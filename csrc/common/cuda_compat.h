// One kernel source for nvcc and for the host emulation (csrc/sim): the few spellings that differ.
#pragma once

#if defined(XLSTM_SIM)
#include "sim/cuda_sim.h"
#define XLSTM_DYNAMIC_SHARED(type, name) type* name = static_cast<type*>(::xlstm_sim::dynamic_shared())
#elif defined(__CUDACC__)
// One untyped symbol: typed `extern __shared__` arrays in templates would clash between instances.
#define XLSTM_DYNAMIC_SHARED(type, name)                                  \
  extern __shared__ __align__(16) unsigned char xlstm_dynamic_shared_[]; \
  type* name = reinterpret_cast<type*>(xlstm_dynamic_shared_)
#endif

#if defined(__CUDACC__) || defined(XLSTM_SIM)
#define XLSTM_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define XLSTM_HOST_DEVICE inline
#endif
