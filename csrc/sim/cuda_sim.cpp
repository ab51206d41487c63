// Fiber scheduler behind cuda_sim.h: one block (or one cluster of blocks) at a time in a shuffled
// order, its threads as fibers.
#include "cuda_sim.h"

#include <sys/mman.h>
#include <ucontext.h>

#include <algorithm>
#include <climits>
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

enum class FiberState { runnable, at_block_barrier, at_warp_barrier, at_cluster_barrier, done };

struct Fiber {
  FiberContext context;
  void* stack = nullptr;
  ThreadContext thread;
  FiberState state = FiberState::done;
  unsigned warp_mask = 0;     // mask of the collective this fiber waits in
  unsigned collectives = 0;   // how many warp collectives it has entered (selects the slot buffer)
  unsigned block_slot = 0;    // its block's rank in the cluster (0 outside cluster launches)
  unsigned cluster_arrivals = 0, cluster_waits = 0;  // cluster barrier phases arrived at / passed
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
  // Cluster launches: fibers and warps are block-major, block_smem[rank] is each block's dynamic
  // shared memory (released when the block's threads have exited; dynamic_smem is unused).
  unsigned cluster_blocks = 0;  // 0 outside cluster launches
  std::vector<std::unique_ptr<unsigned char[]>> block_smem;
};

unsigned blocks_in_flight(const Scheduler& s) { return s.cluster_blocks ? s.cluster_blocks : 1; }
unsigned threads_per_block(const Scheduler& s) { return static_cast<unsigned>(s.fibers.size()) / blocks_in_flight(s); }
unsigned warps_per_block(const Scheduler& s) { return static_cast<unsigned>(s.warps.size()) / blocks_in_flight(s); }

thread_local Scheduler* tls_scheduler = nullptr;
std::mutex launch_mutex;
uint64_t launches = 0;  // under launch_mutex
std::map<const void*, KernelAttributes> kernel_attributes;  // per kernel, under launch_mutex

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

// The first block of every cluster of the grid (every block where `cluster` is one block) once, in a
// shuffled order: the GPU promises no order either.
std::vector<dim3> cluster_order(dim3 grid, dim3 cluster, std::mt19937& rng) {
  std::vector<dim3> origins;
  origins.reserve(static_cast<size_t>(grid.x / cluster.x) * (grid.y / cluster.y) * (grid.z / cluster.z));
  for (unsigned bz = 0; bz < grid.z; bz += cluster.z)
    for (unsigned by = 0; by < grid.y; by += cluster.y)
      for (unsigned bx = 0; bx < grid.x; bx += cluster.x) origins.emplace_back(bx, by, bz);
  std::shuffle(origins.begin(), origins.end(), rng);
  return origins;
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

// The warp of a fiber among the scheduler's warps (block-major in a cluster).
unsigned warp_index(const Scheduler& s, const Fiber& f) {
  return f.block_slot * warps_per_block(s) + linear_thread_index(f.thread) / warpSize;
}

unsigned existing_lanes(const Scheduler& s, unsigned warp) {
  return (warp % warps_per_block(s)) + 1 == warps_per_block(s) ? s.existing_lanes_last_warp : 0xffffffffu;
}

// Parks the running fiber in a warp collective until every lane of `mask` has arrived.
void arrive_at_warp_barrier(Scheduler& s, unsigned mask, const char* what) {
  Fiber& f = *s.running;
  const unsigned lane = linear_thread_index(f.thread) % warpSize;
  const unsigned warp = warp_index(s, f);
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
    const unsigned base = f.block_slot * threads_per_block(s) + (warp % warps_per_block(s)) * warpSize;
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

// Runs a cluster's fibers (block-major) to completion, with the blocks drifting apart as they do on
// a GPU: fibers of all blocks run shuffled together, cluster barriers release every waiter at once,
// but of the blocks whose __syncthreads could complete a random subset goes on each time. A
// block's shared memory is released the moment its last thread exits.
void run_cluster(Scheduler& s, std::mt19937& rng) {
  const unsigned blocks = s.cluster_blocks;
  std::vector<unsigned> live(blocks, threads_per_block(s)), at_barrier(blocks);
  std::vector<Fiber*> order;
  std::vector<unsigned> releasable;
  for (;;) {
    order.clear();
    std::fill(at_barrier.begin(), at_barrier.end(), 0u);
    unsigned fewest_arrivals = UINT_MAX;
    for (Fiber& f : s.fibers) {
      fewest_arrivals = std::min(fewest_arrivals, f.cluster_arrivals);
      if (f.state == FiberState::runnable) order.push_back(&f);
      if (f.state == FiberState::at_block_barrier) ++at_barrier[f.block_slot];
    }
    if (std::all_of(live.begin(), live.end(), [](unsigned n) { return n == 0; })) return;
    if (!order.empty()) {
      std::shuffle(order.begin(), order.end(), rng);
      for (Fiber* f : order) {
        if (f->state != FiberState::runnable) continue;
        run_fiber(s, *f);
        if (s.error) std::rethrow_exception(s.error);
        if (f->state == FiberState::done && --live[f->block_slot] == 0) s.block_smem[f->block_slot].reset();
      }
      continue;
    }
    releasable.clear();
    for (unsigned b = 0; b < blocks; ++b)
      if (live[b] > 0 && at_barrier[b] == live[b]) releasable.push_back(b);
    if (!releasable.empty()) {
      std::shuffle(releasable.begin(), releasable.end(), rng);
      releasable.resize(std::uniform_int_distribution<size_t>(1, releasable.size())(rng));
    }
    bool released = false;
    for (Fiber& f : s.fibers) {
      const bool block_released = f.state == FiberState::at_block_barrier &&
                                  std::find(releasable.begin(), releasable.end(), f.block_slot) != releasable.end();
      // A wait completes the phase the fiber arrived at last: once every thread has arrived there.
      const bool cluster_released = f.state == FiberState::at_cluster_barrier && fewest_arrivals >= f.cluster_arrivals;
      if (cluster_released) ++f.cluster_waits;
      if (block_released || cluster_released) {
        f.state = FiberState::runnable;
        released = true;
      }
    }
    if (released) continue;
    fail("deadlock: threads wait at a cluster barrier that other threads of the cluster have exited without "
         "arriving at, or wait in a barrier or collective whose other threads wait elsewhere (divergent barrier)");
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
  Warp& w = s.warps[warp_index(s, f)];
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
  Warp& w = s.warps[warp_index(s, f)];
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
  Warp& w = s.warps[warp_index(s, f)];
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

void* dynamic_shared() {
  Scheduler& s = active_scheduler("dynamic shared memory");
  return s.cluster_blocks ? s.block_smem[s.running->block_slot].get() : s.dynamic_smem.get();
}

// In a cluster launch the race check's unit is the cluster: its blocks run at once and order their
// accesses with cluster barriers, which the check cannot see, so it reports the cluster's first block.
bool running_block(RunningBlock* block) {
  const Scheduler* s = tls_scheduler;
  if (s == nullptr || s->running == nullptr) return false;
  dim3 block_idx = s->running->thread.block_idx;
  if (s->cluster_blocks) block_idx = s->fibers.front().thread.block_idx;
  *block = {launches, block_idx};
  return true;
}

bool is_block_local(const void* address) {
  const Scheduler& s = *tls_scheduler;
  if (MemoryRange{static_cast<unsigned char*>(s.running->stack), kFiberStackBytes}.contains(address) ||
      MemoryRange{s.dynamic_smem.get(), s.dynamic_smem_bytes}.contains(address))
    return true;
  for (const auto& smem : s.block_smem)  // a cluster's shared memory, its peers' included
    if (smem && MemoryRange{smem.get(), s.dynamic_smem_bytes}.contains(address)) return true;
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

bool use_static_shared() {
  if (active_scheduler("static shared memory").cluster_blocks)
    fail("static shared memory (XLSTM_STATIC_SHARED) in a cluster launch: the emulation runs a cluster's blocks at "
         "once with one instance of each static, so a cluster kernel takes dynamic shared memory");
  return true;
}

cudaError_t set_kernel_attribute(const void* kernel, cudaFuncAttribute attribute, int value) {
  std::lock_guard<std::mutex> lock(launch_mutex);
  KernelAttributes& attributes = kernel_attributes[kernel];
  switch (attribute) {
    case cudaFuncAttributeMaxDynamicSharedMemorySize:
      if (value < 0 || static_cast<size_t>(value) > kMaxDynamicSharedBytes) return cudaErrorInvalidValue;
      attributes.max_dynamic_shared_bytes = static_cast<size_t>(value);
      return cudaSuccess;
    case cudaFuncAttributeNonPortableClusterSizeAllowed:
      if (value != 0 && value != 1) return cudaErrorInvalidValue;
      attributes.non_portable_cluster_size = value == 1;
      return cudaSuccess;
  }
  return cudaErrorInvalidValue;
}

KernelAttributes kernel_attributes_of(const void* kernel) {
  std::lock_guard<std::mutex> lock(launch_mutex);
  const auto found = kernel_attributes.find(kernel);
  return found == kernel_attributes.end() ? KernelAttributes{} : found->second;
}

namespace {

// The limits every launch is checked against, as the GPU would, and the kernel's own.
void check_launch(dim3 grid, dim3 block, size_t dynamic_smem_bytes, const KernelLimits& limits) {
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
  if (dynamic_smem_bytes > limits.attributes.max_dynamic_shared_bytes)
    fail("launch asks for " + std::to_string(dynamic_smem_bytes) + " bytes of dynamic shared memory, above the " +
         std::to_string(limits.attributes.max_dynamic_shared_bytes) + " the kernel allows (above " +
         std::to_string(kDefaultDynamicSharedBytes) +
         " the kernel needs cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize))");
}

Scheduler& cluster_scheduler(const char* what) {
  Scheduler& s = active_scheduler(what);
  if (s.cluster_blocks == 0) fail(std::string(what) + " called in a kernel launched without a cluster dimension");
  return s;
}

// Starts the fibers of block `block_idx` at fibers[first ..], the cluster rank `rank`.
void start_block(Scheduler& s, FiberStacks& stacks, size_t first, unsigned rank, dim3 block_idx, dim3 block,
                 dim3 grid) {
  size_t t = first;
  for (unsigned tz = 0; tz < block.z; ++tz)
    for (unsigned ty = 0; ty < block.y; ++ty)
      for (unsigned tx = 0; tx < block.x; ++tx, ++t) {
        Fiber& f = s.fibers[t];
        f.thread = ThreadContext{dim3(tx, ty, tz), block_idx, block, grid};
        f.state = FiberState::runnable;
        f.collectives = 0;
        f.warp_mask = 0;
        f.block_slot = rank;
        f.cluster_arrivals = f.cluster_waits = 0;
        f.stack = stacks.get(t);
        start_context(f.context, f.stack, kFiberStackBytes, fiber_entry);
      }
}

FiberStacks& fiber_stacks() {
  static FiberStacks stacks;  // under launch_mutex
  return stacks;
}

// The per-launch state shared by plain and cluster launches: `blocks` blocks (1 for a plain launch)
// of `threads` threads each run at once.
void prepare_scheduler(Scheduler& s, const std::function<void()>& body, unsigned blocks, unsigned threads,
                       size_t dynamic_smem_bytes) {
  s.body = &body;
  s.dynamic_smem_bytes = dynamic_smem_bytes;
  s.fibers.resize(static_cast<size_t>(blocks) * threads);
  s.warps.resize(static_cast<size_t>(blocks) * ((threads + warpSize - 1) / warpSize));
  const unsigned tail = threads % warpSize;
  s.existing_lanes_last_warp = tail == 0 ? 0xffffffffu : (1u << tail) - 1;
}

// Makes `s` the running launch's scheduler for the fibers' intrinsics, until the launch returns.
struct ActiveScheduler {
  explicit ActiveScheduler(Scheduler& s) { tls_scheduler = &s; }
  ~ActiveScheduler() { tls_scheduler = nullptr; }
};

}  // namespace

void launch(dim3 grid, dim3 block, size_t dynamic_smem_bytes, const std::function<void()>& body,
            const KernelLimits& limits) {
  check_launch(grid, block, dynamic_smem_bytes, limits);
  const unsigned threads = block.x * block.y * block.z;

  std::lock_guard<std::mutex> lock(launch_mutex);
  std::mt19937 rng(static_cast<uint32_t>(initial_seed() + 7919 * launches++));

  Scheduler s;
  prepare_scheduler(s, body, 1, threads, dynamic_smem_bytes);
  s.dynamic_smem.reset(dynamic_smem_bytes ? new unsigned char[dynamic_smem_bytes] : nullptr);
  const ActiveScheduler active(s);

  for (const dim3& block_idx : cluster_order(grid, dim3(1), rng)) {
    poison_shared_memory(s);
    for (Warp& w : s.warps) w.arrived = 0;
    start_block(s, fiber_stacks(), 0, 0, block_idx, block, grid);
    run_block(s, rng);
  }
}

void cluster_arrive() {
  Scheduler& s = cluster_scheduler("barrier.cluster.arrive");
  Fiber& f = *s.running;
  if (f.cluster_arrivals != f.cluster_waits) fail("barrier.cluster.arrive twice without a wait in between");
  ++f.cluster_arrivals;
}

void cluster_wait() {
  Scheduler& s = cluster_scheduler("barrier.cluster.wait");
  Fiber& f = *s.running;
  if (f.cluster_arrivals == f.cluster_waits) fail("barrier.cluster.wait without an arrive before it");
  f.state = FiberState::at_cluster_barrier;
  switch_to_scheduler(s, f, false);
}

unsigned cluster_block_rank() { return cluster_scheduler("%cluster_ctarank").running->block_slot; }

unsigned cluster_blocks() { return cluster_scheduler("%cluster_nctarank").cluster_blocks; }

void* cluster_map_shared_rank(const void* ptr, unsigned rank) {
  Scheduler& s = cluster_scheduler("mapa (map_shared_rank)");
  const Fiber& f = *s.running;
  if (rank >= s.cluster_blocks)
    fail("mapa: block rank " + std::to_string(rank) + " outside the cluster of " + std::to_string(s.cluster_blocks));
  if (f.cluster_waits == 0)
    fail("mapa: distributed shared memory used before a cluster barrier (the peer block may not have started)");
  const auto* own = s.block_smem[f.block_slot].get();
  const auto* p = static_cast<const unsigned char*>(ptr);
  if (own == nullptr || p < own || p >= own + s.dynamic_smem_bytes)
    fail("mapa: the pointer is not in this block's dynamic shared memory");
  if (!s.block_smem[rank])
    fail("mapa: block rank " + std::to_string(rank) + " of the cluster has exited (its shared memory is released): "
         "a cluster barrier must keep it alive while peers use it");
  return s.block_smem[rank].get() + (p - own);
}

void launch_cluster(dim3 grid, dim3 block, dim3 cluster, size_t dynamic_smem_bytes, const std::function<void()>& body,
                    const KernelLimits& limits) {
  check_launch(grid, block, dynamic_smem_bytes, limits);
  const unsigned blocks = cluster.x * cluster.y * cluster.z;
  const bool non_portable = limits.attributes.non_portable_cluster_size;
  const unsigned limit = non_portable ? kMaxClusterBlocks : kMaxPortableClusterBlocks;
  if (blocks == 0 || blocks > limit)
    fail("launch with clusters of " + std::to_string(blocks) + " blocks (max " + std::to_string(limit) +
         (non_portable ? ")" : " without the non-portable cluster size attribute)"));
  if (grid.x % cluster.x || grid.y % cluster.y || grid.z % cluster.z)
    fail("launch whose grid is not a whole number of clusters");
  const unsigned threads = block.x * block.y * block.z;

  std::lock_guard<std::mutex> lock(launch_mutex);
  std::mt19937 rng(static_cast<uint32_t>(initial_seed() + 104729 * launches++));

  Scheduler s;
  prepare_scheduler(s, body, blocks, threads, dynamic_smem_bytes);
  s.cluster_blocks = blocks;
  s.block_smem.resize(blocks);
  const ActiveScheduler active(s);

  for (const dim3& origin : cluster_order(grid, cluster, rng)) {
    for (Warp& w : s.warps) w.arrived = 0;
    for (unsigned rank = 0; rank < blocks; ++rank) {
      s.block_smem[rank].reset(dynamic_smem_bytes ? new unsigned char[dynamic_smem_bytes] : nullptr);
      poison({s.block_smem[rank].get(), dynamic_smem_bytes});
      // Rank order is x fastest within the cluster, as %cluster_ctarank.
      const dim3 block_idx(origin.x + rank % cluster.x, origin.y + rank / cluster.x % cluster.y,
                           origin.z + rank / (cluster.x * cluster.y));
      start_block(s, fiber_stacks(), static_cast<size_t>(rank) * threads, rank, block_idx, block, grid);
    }
    run_cluster(s, rng);
  }
}

}  // namespace xlstm_sim
