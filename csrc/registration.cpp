// Declares every op once. Built twice: into xlstm_cuda._C (namespace xlstm_cuda: CPU kernels, plus
// CUDA kernels when compiled with nvcc) and, with XLSTM_SIM, into xlstm_cuda._sim (namespace
// xlstm_cuda_sim: the CUDA kernels run by the host emulation on CPU tensors).
#include <torch/library.h>
#include <torch/extension.h>

#include "ops.h"

#if defined(XLSTM_SIM)
#define XLSTM_NAMESPACE xlstm_cuda_sim
#else
#define XLSTM_NAMESPACE xlstm_cuda
#endif
// Indirection so that the namespace macro expands before TORCH_LIBRARY pastes it.
#define XLSTM_LIBRARY(ns, m) TORCH_LIBRARY(ns, m)
#define XLSTM_LIBRARY_IMPL(ns, key, m) TORCH_LIBRARY_IMPL(ns, key, m)

XLSTM_LIBRARY(XLSTM_NAMESPACE, m) {
  m.def(
      "mlstm_step(Tensor q, Tensor k, Tensor v, Tensor i, Tensor f, Tensor C, Tensor n, Tensor m, float eps) "
      "-> (Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "mlstm_step_backward(Tensor dh, Tensor dC_new, Tensor dn_new, Tensor dm_new, Tensor q, Tensor k, Tensor v, "
      "Tensor i, Tensor f, Tensor C, Tensor n, Tensor m, float eps) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "slstm_forward(Tensor x_gates, Tensor R, Tensor b, Tensor initial, bool save_trace=True) "
      "-> (Tensor, Tensor, Tensor)");
  m.def(
      "slstm_backward(Tensor dh, Tensor d_last, Tensor x_gates, Tensor R, Tensor b, Tensor trace) "
      "-> (Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "mlstm_chunkwise_forward(Tensor q, Tensor k, Tensor v, Tensor i, Tensor f, Tensor C, Tensor n, Tensor m, "
      "int chunk_size, float eps) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "mlstm_chunkwise_backward(Tensor dh, Tensor dC_T, Tensor dn_T, Tensor dm_T, Tensor q, Tensor k, Tensor v, "
      "Tensor i, Tensor f, Tensor C, Tensor n, Tensor m, Tensor h, Tensor C_T, Tensor n_T, Tensor C_starts, "
      "Tensor n_starts, Tensor m_all, Tensor qn_all, int chunk_size, float eps) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def("causal_conv1d_silu(Tensor x, Tensor weight, Tensor bias, Tensor initial) -> Tensor");
  m.def(
      "causal_conv1d_silu_backward(Tensor dy, Tensor x, Tensor weight, Tensor bias, Tensor initial) "
      "-> (Tensor, Tensor, Tensor, Tensor)");
  m.def("headwise_linear(Tensor x, Tensor weight, int heads=1) -> Tensor");
  m.def("headwise_linear_backward(Tensor dy, Tensor x, Tensor weight, int heads=1) -> (Tensor, Tensor)");
  m.def("mlstm_output_gate(Tensor h, Tensor x_conv, Tensor z, Tensor norm_weight, Tensor skip) -> Tensor");
  m.def(
      "mlstm_output_gate_backward(Tensor dy, Tensor h, Tensor x_conv, Tensor z, Tensor norm_weight, Tensor skip) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor)");
}

// Every op's implementation from the entry points with the given suffix (ops.h).
#define XLSTM_IMPL_ALL(m, suffix)                                              \
  m.impl("mlstm_step", &xlstm::mlstm_step_##suffix);                           \
  m.impl("mlstm_step_backward", &xlstm::mlstm_step_backward_##suffix);         \
  m.impl("slstm_forward", &xlstm::slstm_forward_##suffix);                     \
  m.impl("slstm_backward", &xlstm::slstm_backward_##suffix);                   \
  m.impl("mlstm_chunkwise_forward", &xlstm::mlstm_chunkwise_forward_##suffix); \
  m.impl("mlstm_chunkwise_backward", &xlstm::mlstm_chunkwise_backward_##suffix); \
  m.impl("causal_conv1d_silu", &xlstm::causal_conv1d_silu_##suffix);           \
  m.impl("causal_conv1d_silu_backward", &xlstm::causal_conv1d_silu_backward_##suffix); \
  m.impl("headwise_linear", &xlstm::headwise_linear_##suffix);                 \
  m.impl("headwise_linear_backward", &xlstm::headwise_linear_backward_##suffix); \
  m.impl("mlstm_output_gate", &xlstm::mlstm_output_gate_##suffix);             \
  m.impl("mlstm_output_gate_backward", &xlstm::mlstm_output_gate_backward_##suffix);

#if defined(XLSTM_SIM)
XLSTM_LIBRARY_IMPL(XLSTM_NAMESPACE, CPU, m) { XLSTM_IMPL_ALL(m, cuda) }
#else
XLSTM_LIBRARY_IMPL(XLSTM_NAMESPACE, CPU, m) { XLSTM_IMPL_ALL(m, cpu) }
#if defined(XLSTM_WITH_CUDA)
XLSTM_LIBRARY_IMPL(XLSTM_NAMESPACE, CUDA, m) { XLSTM_IMPL_ALL(m, cuda) }
#endif
#endif

// Set by setup.py / CMakeLists.txt.
#ifndef XLSTM_CUDA_ARCHS
#define XLSTM_CUDA_ARCHS ""
#endif
#ifndef XLSTM_CUDA_VERSION
#define XLSTM_CUDA_VERSION ""
#endif
#ifndef XLSTM_TORCH_VERSION
#define XLSTM_TORCH_VERSION ""
#endif

PYBIND11_MODULE(TORCH_EXTENSION_NAME, module) {
  module.doc() = "xlstm_cuda compiled kernels";
  module.def("build_info", [] {
    pybind11::dict info;
#if defined(XLSTM_SIM)
    info["kind"] = "host emulation of the CUDA kernels";
    info["sanitized"] = XLSTM_SIM_SANITIZED != 0;
#else
    info["kind"] = "kernels";
#if defined(XLSTM_WITH_CUDA)
    info["cuda"] = true;
#else
    info["cuda"] = false;
#endif
    info["cuda_archs"] = XLSTM_CUDA_ARCHS;
    info["cuda_version"] = XLSTM_CUDA_VERSION;
    info["cpu_simd"] = XLSTM_CPU_SIMD;  // the vector ISA the CPU kernels were compiled for
#endif
    info["torch_version"] = XLSTM_TORCH_VERSION;
    info["namespace"] = C10_STRINGIZE(XLSTM_NAMESPACE);
    return info;
  });
#if defined(XLSTM_WITH_CUDA) || defined(XLSTM_SIM)
  module.def("slstm_cuda_path", &xlstm::slstm_cuda_path,
             "The sLSTM CUDA kernel that runs for head size dh on the current device: where it keeps R.");
#endif
}
