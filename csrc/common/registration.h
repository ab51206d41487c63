// How an op registers itself: its schema in ops/<op>/schema.cpp, each backend's implementation in
// that backend's file. Both modules compile these files: xlstm_cuda._C (namespace xlstm_cuda: the
// CPU kernels, and the CUDA kernels for CUDA tensors when built with nvcc) and, with XLSTM_SIM,
// xlstm_cuda._sim (namespace xlstm_cuda_sim: the CUDA kernels run by the host emulation on CPU
// tensors; the CPU kernel files are not part of it).
#pragma once

#include <torch/library.h>

#if defined(XLSTM_SIM)
#define XLSTM_CUDA_KERNELS_KEY CPU
#else
#define XLSTM_CUDA_KERNELS_KEY CUDA
#endif
// A build may name its own namespace (the test-only fixture op does, to stay out of the package's).
#if !defined(XLSTM_NAMESPACE) && defined(XLSTM_SIM)
#define XLSTM_NAMESPACE xlstm_cuda_sim
#elif !defined(XLSTM_NAMESPACE)
#define XLSTM_NAMESPACE xlstm_cuda
#endif

// Indirection so that the namespace and key macros expand before TORCH_LIBRARY_* pastes them.
#define XLSTM_EXPANDED_FRAGMENT(ns, m) TORCH_LIBRARY_FRAGMENT(ns, m)
#define XLSTM_EXPANDED_IMPL(ns, key, m) TORCH_LIBRARY_IMPL(ns, key, m)

// XLSTM_OP_SCHEMAS(m) { m.def("..."); }: an op's schemas, in its schema.cpp.
#define XLSTM_OP_SCHEMAS(m) XLSTM_EXPANDED_FRAGMENT(XLSTM_NAMESPACE, m)
// XLSTM_CPU_KERNELS(m) { m.impl("name", &fn); }: the CPU kernels, in the op's cpu.cpp.
#define XLSTM_CPU_KERNELS(m) XLSTM_EXPANDED_IMPL(XLSTM_NAMESPACE, CPU, m)
// XLSTM_CUDA_KERNELS(m) { m.impl("name", &fn); }: the CUDA kernels, in the op's cuda.cu.
#define XLSTM_CUDA_KERNELS(m) XLSTM_EXPANDED_IMPL(XLSTM_NAMESPACE, XLSTM_CUDA_KERNELS_KEY, m)
