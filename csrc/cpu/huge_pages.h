// Large CPU outputs on transparent huge pages (CPU kernel files). Above glibc's largest mmap
// threshold (32 MiB) every allocation is a fresh mapping whose 4 KiB pages fault in one by one as
// they are first written: a prompt's logits (2048 x 50304 floats) took 250 ms to fault in here,
// 63 ms as 2 MiB pages. madvise(MADV_HUGEPAGE) only advises (a kernel with THP "never" ignores it)
// and applies to this mapping alone, which is unmapped when the tensor is freed.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace xlstm {

inline at::Tensor empty_cpu_large_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor out = at::empty(sizes, options);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHugePage = uintptr_t(2) << 20, kFreshMappings = uintptr_t(32) << 20;
  const uintptr_t bytes = uintptr_t(out.nbytes());
  if (bytes >= kFreshMappings) {
    const uintptr_t start = reinterpret_cast<uintptr_t>(out.data_ptr());
    const uintptr_t first = (start + kHugePage - 1) & ~(kHugePage - 1), last = (start + bytes) & ~(kHugePage - 1);
    if (first < last) madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);  // a hint: failure is fine
  }
#endif
  return out;
}

}  // namespace xlstm
