// Runs the project's sLSTM kernels (float, forward and backward, each place of R: shared memory,
// registers and shared memory, L2) through the cross-block race check (csrc/sim/race_check.cpp):
// built with csrc/ops/slstm/cuda_fp32.cu instrumented by -fsanitize=kernel-address, it exits 0
// when no block reads what another block of its launch wrote, else prints the report and exits 1.
// The values are random: correctness is the op tests' job (tests/ops/test_slstm.py).
#include <cstdio>
#include <random>
#include <stdexcept>
#include <vector>

#include "ops/slstm/launch.h"

using namespace xlstm;

namespace {

struct Shape {
  int64_t B, S, NH, DH;
};

std::vector<float> random_values(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.f, 0.5f);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

// Forward then backward at one shape and place of R, with the launch shape cuda.cu uses.
void run(const Shape& s, SlstmRPlace place, std::mt19937& rng) {
  const int64_t G = kSlstmGates * s.DH, slots = s.S + 1, cells = s.B * s.NH * s.DH;
  std::vector<float> x = random_values(s.B * s.S * s.NH * G, rng), R = random_values(s.NH * s.DH * G, rng);
  std::vector<float> RT(R.size()), bias = random_values(s.NH * G, rng);
  for (int64_t h = 0; h < s.NH; ++h)
    for (int64_t k = 0; k < s.DH; ++k)
      for (int64_t g = 0; g < G; ++g) RT[(h * G + g) * s.DH + k] = R[(h * s.DH + k) * G + g];
  std::vector<float> trace(kSlstmTracePlanes * s.B * slots * s.NH * s.DH, 0.f), h_out(s.B * s.S * s.NH * s.DH);
  for (int plane = 1; plane < 3; ++plane)  // c, n of the initial state; h and m stay 0
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t i = 0; i < s.NH * s.DH; ++i) trace[(plane * s.B + b) * slots * s.NH * s.DH + i] = 1.f;

  SlstmBwdParams<float, float> p;
  p.batch = s.B, p.seq = s.S, p.heads = s.NH, p.dh = s.DH;
  p.x = x.data();
  p.x_stride_b = s.S * s.NH * G, p.x_stride_t = s.NH * G, p.x_stride_h = G;
  p.R = R.data(), p.RT = RT.data(), p.bias = bias.data(), p.trace = trace.data(), p.slots = slots;
  p.h_out = h_out.data();
  const dim3 grid(static_cast<unsigned>(s.NH), static_cast<unsigned>((s.B + kSlstmBatchTile - 1) / kSlstmBatchTile));
  const dim3 block(static_cast<unsigned>(std::min<int64_t>(1024, (G + 31) / 32 * 32)));
  slstm_forward_launch<float>(p, place, grid, block, slstm_fwd_smem_floats(s.DH, place) * sizeof(float), nullptr);

  std::vector<float> d_h = random_values(h_out.size(), rng), d_last = random_values(4 * cells, rng);
  std::vector<float> d_raw(s.B * s.S * s.NH * G), d_first(4 * cells);
  p.d_h = d_h.data(), p.d_last = d_last.data(), p.d_raw = d_raw.data(), p.d_first = d_first.data();
  slstm_backward_launch<float>(p, place, grid, block, slstm_bwd_smem_floats(s.DH, place) * sizeof(float), nullptr);
}

}  // namespace

int main() {
  std::mt19937 rng(7);
  try {
    // 5 rows: two batch tiles per head, so that blocks of a launch share the head's R and outputs.
    run({5, 3, 2, 8}, SlstmRPlace::kShared, rng);
    run({5, 3, 2, 48}, SlstmRPlace::kRegistersAndShared, rng);
    run({5, 3, 2, 40}, SlstmRPlace::kGlobal, rng);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  std::printf("no cross-block race\n");
  return 0;
}
