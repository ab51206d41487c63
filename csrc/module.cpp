// The Python module of the build: build_info and the sLSTM path query. The ops are not listed
// here: each registers itself (common/registration.h). Built into xlstm_cuda._C and, with
// XLSTM_SIM, into xlstm_cuda._sim.
#include <torch/extension.h>

#include "common/registration.h"
#include "ops/slstm/host.h"  // slstm_cuda_path

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
