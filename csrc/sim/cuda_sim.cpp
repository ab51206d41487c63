// Fiber scheduler behind cuda_sim.h: one block at a time in a shuffled order, its threads as fibers.
#include "cuda_sim.h"

#include <sys/mman.h>
#include <ucontext.h>

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define XLSTM_SIM_ASAN 1
#endif

// Fiber context switches. swapcontext saves and restores the signal mask with a system call on
// every switch, which dominated the emulation's run time; on x86-64 a switch here is the
// callee-saved registers, the SSE and x87 control words and the stack pointer (System V ABI).
#if defined(__x86_64__)
extern "C" void xlstm_sim_switch_stack(void** save_sp, void* load_sp);
asm(R"(
  .text
  .p2align 4
  .globl xlstm_sim_switch_stack
  .hidden xlstm_sim_switch_stack
  .type xlstm_sim_switch_stack, @function
xlstm_sim_switch_stack:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size xlstm_sim_switch_stack, .-xlstm_sim_switch_stack
)");
#endif

namespace xlstm_sim {
namespace {

#if defined(__x86_64__)
struct FiberContext {
  void* sp = nullptr;
};

void switch_context(FiberContext& from, FiberContext& to) { xlstm_sim_switch_stack(&from.sp, to.sp); }

// A context that starts entry (which must never return) on the given stack, with the control
// words' default values. The stack may hold the redzones of an earlier fiber's frames, which
// AddressSanitizer's swapcontext interceptor would have cleared.
void start_context(FiberContext& c, void* stack, size_t bytes, void (*entry)()) {
#ifdef XLSTM_SIM_ASAN
  ASAN_UNPOISON_MEMORY_REGION(stack, bytes);
#endif
  auto* sp = reinterpret_cast<uint64_t*>((reinterpret_cast<uintptr_t>(stack) + bytes) & ~uintptr_t(15));
  *--sp = 0;                                  // entry's return address: none
  *--sp = reinterpret_cast<uint64_t>(entry);  // where the switch's ret goes
  for (int reg = 0; reg < 6; ++reg) *--sp = 0;
  *--sp = 0x037F00001F80ull;  // MXCSR 0x1F80, x87 control word 0x037F
  c.sp = sp;
}
#else
struct FiberContext {
  ucontext_t uc;
};

void switch_context(FiberContext& from, FiberContext& to) { swapcontext(&from.uc, &to.uc); }

void start_context(FiberContext& c, void* stack, size_t bytes, void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = bytes;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}
#endif

constexpr size_t kFiberStackBytes = 512 * 1024;

enum class FiberState { runnable, at_block_barrier, at_warp_barrier, done };

struct Fiber {
  FiberContext context;
  void* stack = nullptr;
  ThreadContext thread;
  FiberState state = FiberState::done;
  unsigned warp_mask = 0;     // mask of the collective this fiber waits in
  unsigned collectives = 0;   // how many warp collectives it has entered (selects the slot buffer)
  void* asan_fake_stack = nullptr;
};

struct Warp {
  uint64_t slots[2][32];
  unsigned char gathered[2][32][kMaxGatherBytes];
  unsigned arrived = 0;
};

struct Scheduler {
  std::vector<Fiber> fibers;
  std::vector<Warp> warps;
  FiberContext scheduler_context;
  const std::function<void()>* body = nullptr;
  std::unique_ptr<unsigned char[]> dynamic_smem;
  size_t dynamic_smem_bytes = 0;
  unsigned existing_lanes_last_warp = 0;  // lane mask of a partial last warp
  Fiber* running = nullptr;
  const void* scheduler_stack_bottom = nullptr;
  size_t scheduler_stack_size = 0;
  void* scheduler_fake_stack = nullptr;
  std::exception_ptr error;  // raised inside a fiber, rethrown by the scheduler
};

thread_local Scheduler* tls_scheduler = nullptr;
std::mutex launch_mutex;
uint64_t launches = 0;  // under launch_mutex
std::map<const void*, size_t> opt_in_dynamic_shared;  // per kernel, under launch_mutex

struct MemoryRange {
  unsigned char* begin;
  size_t bytes;
  bool contains(const void* p) const { return p >= begin && p < begin + bytes; }
};
std::vector<MemoryRange> static_shared;  // every XLSTM_STATIC_SHARED variable, under launch_mutex

// 0xff bytes: NaN in any float type.
void poison(const MemoryRange& range) {
  if (range.bytes != 0) std::memset(range.begin, 0xff, range.bytes);
}

// A block starts with every byte of its shared memory, static and dynamic, poisoned.
void poison_shared_memory(Scheduler& s) {
  for (const MemoryRange& variable : static_shared) poison(variable);
  poison({s.dynamic_smem.get(), s.dynamic_smem_bytes});
}

// Every block of the grid once, in a shuffled order: the GPU promises no order either.
std::vector<dim3> block_order(dim3 grid, std::mt19937& rng) {
  std::vector<dim3> blocks;
  blocks.reserve(static_cast<size_t>(grid.x) * grid.y * grid.z);
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) blocks.emplace_back(bx, by, bz);
  std::shuffle(blocks.begin(), blocks.end(), rng);
  return blocks;
}

[[noreturn]] void fail(const std::string& message) {
  throw std::runtime_error("xlstm_cuda emulation: " + message);
}

void switch_to_scheduler(Scheduler& s, Fiber& f, bool exiting) {
#ifdef XLSTM_SIM_ASAN
  __sanitizer_start_switch_fiber(exiting ? nullptr : &f.asan_fake_stack, s.scheduler_stack_bottom,
                                 s.scheduler_stack_size);
#else
  (void)exiting;
#endif
  switch_context(f.context, s.scheduler_context);
#ifdef XLSTM_SIM_ASAN
  __sanitizer_finish_switch_fiber(f.asan_fake_stack, &s.scheduler_stack_bottom, &s.scheduler_stack_size);
#endif
}

void fiber_entry() {
  Scheduler& s = *tls_scheduler;
  Fiber& f = *s.running;
#ifdef XLSTM_SIM_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &s.scheduler_stack_bottom, &s.scheduler_stack_size);
#endif
  try {
    (*s.body)();
  } catch (...) {
    s.error = std::current_exception();
  }
  f.state = FiberState::done;
  switch_to_scheduler(s, f, /*exiting=*/true);
}

void run_fiber(Scheduler& s, Fiber& f) {
  s.running = &f;
#ifdef XLSTM_SIM_ASAN
  __sanitizer_start_switch_fiber(&s.scheduler_fake_stack, f.stack, kFiberStackBytes);
#endif
  switch_context(s.scheduler_context, f.context);
#ifdef XLSTM_SIM_ASAN
  __sanitizer_finish_switch_fiber(s.scheduler_fake_stack, nullptr, nullptr);
#endif
  s.running = nullptr;
}

unsigned linear_thread_index(const ThreadContext& t) {
  return t.thread_idx.x + t.block_dim.x * (t.thread_idx.y + t.block_dim.y * t.thread_idx.z);
}

Scheduler& active_scheduler(const char* what) {
  if (tls_scheduler == nullptr || tls_scheduler->running == nullptr)
    fail(std::string(what) + " called outside a kernel");
  return *tls_scheduler;
}

unsigned existing_lanes(const Scheduler& s, unsigned warp) {
  return warp + 1 == s.warps.size() ? s.existing_lanes_last_warp : 0xffffffffu;
}

// Parks the running fiber in a warp collective until every lane of `mask` has arrived.
void arrive_at_warp_barrier(Scheduler& s, unsigned mask, const char* what) {
  Fiber& f = *s.running;
  const unsigned lane = linear_thread_index(f.thread) % warpSize;
  const unsigned warp = linear_thread_index(f.thread) / warpSize;
  Warp& w = s.warps[warp];
  if ((mask & ~existing_lanes(s, warp)) != 0)
    fail(std::string(what) + " mask names lanes that do not exist in this warp (block size " +
         std::to_string(f.thread.block_dim.x * f.thread.block_dim.y * f.thread.block_dim.z) +
         " is not a multiple of the warp size)");
  if ((mask & (1u << lane)) == 0) fail(std::string(what) + " called by a lane outside its mask");
  f.state = FiberState::at_warp_barrier;
  f.warp_mask = mask;
  w.arrived |= 1u << lane;
  if ((w.arrived & mask) == mask) {
    const unsigned base = warp * warpSize;
    for (unsigned l = 0; l < warpSize; ++l) {
      if ((mask >> l) & 1u) {
        Fiber& other = s.fibers[base + l];
        if (other.warp_mask != mask) fail(std::string(what) + " reached with different masks in one warp");
        other.state = FiberState::runnable;
      }
    }
    w.arrived &= ~mask;
  }
  switch_to_scheduler(s, f, false);
}

void run_block(Scheduler& s, std::mt19937& rng) {
  std::vector<Fiber*> order;
  for (;;) {
    order.clear();
    size_t live = 0, at_barrier = 0;
    for (Fiber& f : s.fibers) {
      if (f.state == FiberState::done) continue;
      ++live;
      if (f.state == FiberState::runnable) order.push_back(&f);
      if (f.state == FiberState::at_block_barrier) ++at_barrier;
    }
    if (live == 0) return;
    if (!order.empty()) {
      std::shuffle(order.begin(), order.end(), rng);
      for (Fiber* f : order) {
        if (f->state == FiberState::runnable) run_fiber(s, *f);
        if (s.error) std::rethrow_exception(s.error);
      }
      continue;
    }
    if (at_barrier == live) {
      for (Fiber& f : s.fibers)
        if (f.state == FiberState::at_block_barrier) f.state = FiberState::runnable;
      continue;
    }
    fail("deadlock: threads wait in a warp collective whose other lanes wait at __syncthreads "
         "or have exited (divergent barrier or collective)");
  }
}

uint64_t initial_seed() {
  const char* env = std::getenv("XLSTM_SIM_SEED");
  return env != nullptr ? std::strtoull(env, nullptr, 10) : 0x5eed;
}

struct FiberStacks {
  std::vector<void*> stacks;
  void* get(size_t index) {
    while (stacks.size() <= index) {
      void* p = mmap(nullptr, kFiberStackBytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p == MAP_FAILED) fail("cannot map a fiber stack");
      stacks.push_back(p);
    }
    return stacks[index];
  }
};

}  // namespace

const ThreadContext& current() { return active_scheduler("threadIdx/blockIdx").running->thread; }

void syncthreads() {
  Scheduler& s = active_scheduler("__syncthreads");
  s.running->state = FiberState::at_block_barrier;
  switch_to_scheduler(s, *s.running, false);
}

uint64_t warp_shuffle(unsigned mask, uint64_t bits, int src_lane) {
  Scheduler& s = active_scheduler("__shfl_sync");
  Fiber& f = *s.running;
  const unsigned lane = linear_thread_index(f.thread) % warpSize;
  Warp& w = s.warps[linear_thread_index(f.thread) / warpSize];
  // Two slot buffers: a lane can only reach collective g+2 after every lane has left collective g.
  uint64_t* slots = w.slots[f.collectives++ % 2];
  slots[lane] = bits;
  arrive_at_warp_barrier(s, mask, "__shfl_sync");
  const bool valid = src_lane >= 0 && src_lane < warpSize && ((mask >> src_lane) & 1u);
  return valid ? slots[src_lane] : bits;
}

unsigned warp_ballot(unsigned mask, bool predicate) {
  Scheduler& s = active_scheduler("__ballot_sync");
  Fiber& f = *s.running;
  const unsigned lane = linear_thread_index(f.thread) % warpSize;
  Warp& w = s.warps[linear_thread_index(f.thread) / warpSize];
  uint64_t* slots = w.slots[f.collectives++ % 2];
  slots[lane] = predicate ? 1 : 0;
  arrive_at_warp_barrier(s, mask, "__ballot_sync");
  unsigned result = 0;
  for (int l = 0; l < warpSize; ++l)
    if (((mask >> l) & 1u) && slots[l]) result |= 1u << l;
  return result;
}

void warp_all_gather(unsigned mask, const void* mine, size_t bytes, void* all) {
  Scheduler& s = active_scheduler("warp matrix instruction");
  if (bytes > kMaxGatherBytes) fail("warp_all_gather of more than kMaxGatherBytes per lane");
  Fiber& f = *s.running;
  const unsigned lane = linear_thread_index(f.thread) % warpSize;
  Warp& w = s.warps[linear_thread_index(f.thread) / warpSize];
  auto& slots = w.gathered[f.collectives++ % 2];
  std::memcpy(slots[lane], mine, bytes);
  arrive_at_warp_barrier(s, mask, "warp matrix instruction");
  for (int l = 0; l < warpSize; ++l)
    if ((mask >> l) & 1u) std::memcpy(static_cast<unsigned char*>(all) + l * bytes, slots[l], bytes);
}

void syncwarp(unsigned mask) {
  Scheduler& s = active_scheduler("__syncwarp");
  s.running->collectives++;
  arrive_at_warp_barrier(s, mask, "__syncwarp");
}

void* dynamic_shared() { return active_scheduler("dynamic shared memory").dynamic_smem.get(); }

bool running_block(RunningBlock* block) {
  const Scheduler* s = tls_scheduler;
  if (s == nullptr || s->running == nullptr) return false;
  *block = {launches, s->running->thread.block_idx};
  return true;
}

bool is_block_local(const void* address) {
  const Scheduler& s = *tls_scheduler;
  if (MemoryRange{static_cast<unsigned char*>(s.running->stack), kFiberStackBytes}.contains(address) ||
      MemoryRange{s.dynamic_smem.get(), s.dynamic_smem_bytes}.contains(address))
    return true;
  for (const MemoryRange& variable : static_shared)
    if (variable.contains(address)) return true;
  return false;
}

bool register_static_shared(void* variable, size_t bytes) {
  active_scheduler("static shared memory");  // runs inside a launch, so under launch_mutex
  static_shared.push_back({static_cast<unsigned char*>(variable), bytes});
  poison(static_shared.back());
  return true;
}

cudaError_t set_max_dynamic_shared(const void* kernel, int bytes) {
  if (bytes < 0 || static_cast<size_t>(bytes) > kMaxDynamicSharedBytes) return cudaErrorInvalidValue;
  std::lock_guard<std::mutex> lock(launch_mutex);
  opt_in_dynamic_shared[kernel] = static_cast<size_t>(bytes);
  return cudaSuccess;
}

size_t max_dynamic_shared(const void* kernel) {
  std::lock_guard<std::mutex> lock(launch_mutex);
  const auto found = opt_in_dynamic_shared.find(kernel);
  return found == opt_in_dynamic_shared.end() ? kDefaultDynamicSharedBytes : found->second;
}

void launch(dim3 grid, dim3 block, size_t dynamic_smem_bytes, const std::function<void()>& body,
            const KernelLimits& limits) {
  const unsigned threads = block.x * block.y * block.z;
  if (threads == 0 || grid.x == 0 || grid.y == 0 || grid.z == 0) fail("launch with an empty grid or block");
  if (threads > kMaxThreadsPerBlock) fail("launch with " + std::to_string(threads) + " threads per block (max 1024)");
  if (threads > limits.max_threads_per_block)
    fail("launch with " + std::to_string(threads) + " threads per block, above the kernel's __launch_bounds__ (" +
         std::to_string(limits.max_threads_per_block) + ")");
  if (block.z > 64 || grid.y > 65535 || grid.z > 65535) fail("launch dimensions out of range");
  if (dynamic_smem_bytes > kMaxDynamicSharedBytes)
    fail("launch asks for " + std::to_string(dynamic_smem_bytes) + " bytes of dynamic shared memory (max " +
         std::to_string(kMaxDynamicSharedBytes) + ")");
  if (dynamic_smem_bytes > limits.max_dynamic_shared_bytes)
    fail("launch asks for " + std::to_string(dynamic_smem_bytes) + " bytes of dynamic shared memory, above the " +
         std::to_string(limits.max_dynamic_shared_bytes) + " the kernel allows (above " +
         std::to_string(kDefaultDynamicSharedBytes) +
         " the kernel needs cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize))");

  std::lock_guard<std::mutex> lock(launch_mutex);
  static FiberStacks stacks;
  std::mt19937 rng(static_cast<uint32_t>(initial_seed() + 7919 * launches++));

  Scheduler s;
  s.body = &body;
  s.dynamic_smem_bytes = dynamic_smem_bytes;
  s.dynamic_smem.reset(dynamic_smem_bytes ? new unsigned char[dynamic_smem_bytes] : nullptr);
  s.fibers.resize(threads);
  s.warps.resize((threads + warpSize - 1) / warpSize);
  const unsigned tail = threads % warpSize;
  s.existing_lanes_last_warp = tail == 0 ? 0xffffffffu : (1u << tail) - 1;
  tls_scheduler = &s;
  struct Reset {
    ~Reset() { tls_scheduler = nullptr; }
  } reset;

  for (const dim3& block_idx : block_order(grid, rng)) {
    poison_shared_memory(s);
    for (Warp& w : s.warps) w.arrived = 0;
    unsigned t = 0;
    for (unsigned tz = 0; tz < block.z; ++tz)
      for (unsigned ty = 0; ty < block.y; ++ty)
        for (unsigned tx = 0; tx < block.x; ++tx, ++t) {
          Fiber& f = s.fibers[t];
          f.thread = ThreadContext{dim3(tx, ty, tz), block_idx, block, grid};
          f.state = FiberState::runnable;
          f.collectives = 0;
          f.warp_mask = 0;
          f.stack = stacks.get(t);
          start_context(f.context, f.stack, kFiberStackBytes, fiber_entry);
        }
    run_block(s, rng);
  }
}

}  // namespace xlstm_sim
