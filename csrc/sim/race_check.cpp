// Cross-block race check for the host emulation: kernels compiled with g++'s
// -fsanitize=kernel-address --param asan-instrumentation-with-call-threshold=0 call the hooks
// below before every load and store; here they record, per byte of the memory a launch was given,
// the block that last wrote it, and fail the launch when a block reads a byte that another block of
// the same launch wrote. Blocks run in any order and at once on a GPU, so such a read sees either
// value. Link it instead of AddressSanitizer's runtime (the two define the same hooks); the sim's
// own sources (cuda_sim.cpp) are built without the instrumentation.
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "sim/cuda_sim.h"

namespace {

// The block that last wrote each byte in the launch recorded_launch; launches are serial (the sim's
// launch lock).
std::unordered_map<uintptr_t, dim3> last_writer;
uint64_t recorded_launch = 0;

std::string block_name(dim3 b) {
  return "(" + std::to_string(b.x) + ", " + std::to_string(b.y) + ", " + std::to_string(b.z) + ")";
}

bool same_block(dim3 a, dim3 b) { return a.x == b.x && a.y == b.y && a.z == b.z; }

// The running block, when the access is one of a kernel's to memory outside the block's own.
bool tracked(uintptr_t address, xlstm_sim::RunningBlock* block) {
  if (!xlstm_sim::running_block(block) || xlstm_sim::is_block_local(reinterpret_cast<const void*>(address)))
    return false;
  if (block->launch != recorded_launch) {
    last_writer.clear();
    recorded_launch = block->launch;
  }
  return true;
}

void on_load(uintptr_t address, size_t bytes) {
  xlstm_sim::RunningBlock block;
  if (!tracked(address, &block)) return;
  for (size_t i = 0; i < bytes; ++i) {
    const auto found = last_writer.find(address + i);
    if (found != last_writer.end() && !same_block(found->second, block.block_idx)) {
      char where[32];
      std::snprintf(where, sizeof where, "%#zx", static_cast<size_t>(address + i));
      throw std::runtime_error("xlstm_cuda emulation: cross-block race: block " + block_name(block.block_idx) +
                               " reads " + where + ", which block " + block_name(found->second) +
                               " of the same launch wrote (blocks run in any order and at once)");
    }
  }
}

void on_store(uintptr_t address, size_t bytes) {
  xlstm_sim::RunningBlock block;
  if (!tracked(address, &block)) return;
  for (size_t i = 0; i < bytes; ++i) last_writer[address + i] = block.block_idx;
}

}  // namespace

// Hidden, so that the instrumented code of the library binds to these even in a process that has
// AddressSanitizer's runtime loaded.
#define XLSTM_SIM_HOOK __attribute__((visibility("hidden")))
#define XLSTM_SIM_ACCESS_HOOKS(bytes)                                                                           \
  extern "C" XLSTM_SIM_HOOK void __asan_load##bytes##_noabort(uintptr_t address) { on_load(address, bytes); } \
  extern "C" XLSTM_SIM_HOOK void __asan_store##bytes##_noabort(uintptr_t address) { on_store(address, bytes); }
XLSTM_SIM_ACCESS_HOOKS(1)
XLSTM_SIM_ACCESS_HOOKS(2)
XLSTM_SIM_ACCESS_HOOKS(4)
XLSTM_SIM_ACCESS_HOOKS(8)
XLSTM_SIM_ACCESS_HOOKS(16)
extern "C" XLSTM_SIM_HOOK void __asan_loadN_noabort(uintptr_t address, size_t bytes) { on_load(address, bytes); }
extern "C" XLSTM_SIM_HOOK void __asan_storeN_noabort(uintptr_t address, size_t bytes) { on_store(address, bytes); }
// Called before a function that does not return (a throw): nothing to unpoison here.
extern "C" XLSTM_SIM_HOOK void __asan_handle_no_return() {}
#undef XLSTM_SIM_ACCESS_HOOKS
#undef XLSTM_SIM_HOOK
