// HeadwiseLinear linear map on the CPU: threads own ranges of rows (forward, dx) or of groups (dW, rows
// swept in order so that both operands stream through once per thread). Blocks larger than the
// mLSTM's 4 x 4 (the sLSTM layer's gate projections: DH x 2 DH per head and source) in float32 /
// float64 run as register-blocked small GEMMs, one per (batch row, group) over the sequence.
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "common/registration.h"
#include "cpu/simd.h"
#include "cpu/small_gemm.h"
#include "ops/headwise_linear/host.h"

namespace xlstm {
namespace {

constexpr int64_t kRowGrain = 64, kGroupGrain = 4;

// fn(g, offset of group g's outputs in y / dy) for groups [g0, g1) of row n, without a division per
// group: y is head-major, so the groups of one head are contiguous and heads lie seq rows apart.
template <typename scalar_t, typename acc_t, typename Fn>
void for_each_group(const HeadwiseLinearParams<scalar_t, acc_t>& p, int64_t n, int64_t g0, int64_t g1, const Fn& fn) {
  const int64_t per_head = p.groups / p.heads, head_stride = p.seq * per_head * p.out_block;
  const int64_t row = p.out_index(n, 0);
  for (int64_t h = g0 / per_head; h * per_head < g1; ++h) {
    const int64_t first = std::max(g0, h * per_head), last = std::min(g1, (h + 1) * per_head);
    for (int64_t g = first; g < last; ++g) fn(g, row + h * head_stride + (g - h * per_head) * p.out_block);
  }
}

// The loops below take the block sizes as template arguments where they are the layers' 4 x 4
// (so that the inner loops unroll and vectorize) and 0 where they are read at run time.
template <int kO, int kI, typename scalar_t, typename acc_t>
void headwise_linear_fwd_rows(const HeadwiseLinearParams<scalar_t, acc_t>& p, int64_t first, int64_t last) {
  const int64_t G = p.groups, O = kO ? kO : p.out_block, I = kI ? kI : p.in_block;
  for (int64_t n = first; n < last; ++n) {
    const scalar_t* x_row = p.x_row(n);
    for_each_group(p, n, 0, G, [&](int64_t g, int64_t offset) {
      headwise_linear_group<kO, kI>(p.weight + g * O * I, x_row + g * I, O, I, p.y + offset);
    });
  }
}

template <int kO, int kI, typename scalar_t, typename acc_t>
void headwise_linear_dx_rows(const HeadwiseLinearParams<scalar_t, acc_t>& p, int64_t first, int64_t last) {
  const int64_t G = p.groups, O = kO ? kO : p.out_block, I = kI ? kI : p.in_block;
  for (int64_t n = first; n < last; ++n) {
    scalar_t* dx_row = p.dx + n * G * I;
    for_each_group(p, n, 0, G, [&](int64_t g, int64_t offset) {
      for (int64_t i = 0; i < I; ++i) {
        acc_t sum = 0;
        for (int64_t o = 0; o < O; ++o) sum += p.weight[(g * O + o) * I + i] * acc_t(p.dy[offset + o]);
        dx_row[g * I + i] = scalar_t(sum);
      }
    });
  }
}

// dW of groups [g0, g1) over all rows into dw (G, O, I).
template <int kO, int kI, typename scalar_t, typename acc_t>
void headwise_linear_dw_groups(const HeadwiseLinearParams<scalar_t, acc_t>& p, int64_t g0, int64_t g1, acc_t* dw) {
  const int64_t O = kO ? kO : p.out_block, I = kI ? kI : p.in_block;
  std::vector<acc_t> sum((g1 - g0) * O * I, acc_t(0));
  for (int64_t n = 0; n < p.rows(); ++n) {
    const scalar_t* x_row = p.x_row(n);
    for_each_group(p, n, g0, g1, [&](int64_t g, int64_t offset) {
      for (int64_t o = 0; o < O; ++o) {
        const acc_t d = acc_t(p.dy[offset + o]);
        acc_t* s = sum.data() + ((g - g0) * O + o) * I;
        for (int64_t i = 0; i < I; ++i) s[i] += d * acc_t(x_row[g * I + i]);
      }
    });
  }
  std::copy(sum.begin(), sum.end(), dw + g0 * O * I);
}

// The small-GEMM path: group g of batch row b is S rows of x (row stride x_stride_s) and of y / dy
// (row stride out_width / heads, head-major or not).
template <typename T>
struct HeadwiseLinearGemm {
  const HeadwiseLinearParams<T, T>& p;
  int64_t O = p.out_block, I = p.in_block, ld_out = p.out_width() / p.heads;
  const T* x_at(int64_t b, int64_t g) const { return p.x_row(b * p.seq) + g * I; }
  int64_t out_at(int64_t b, int64_t g) const { return p.out_index(b * p.seq, g * O); }

  // y = x W[g]ᵀ per (b, g); wT (G, I, O): the weight's blocks transposed.
  void forward(const T* wT) const {
    at::parallel_for(0, p.batch * p.groups, 1, [&](int64_t first, int64_t last) {
      for (int64_t w = first; w < last; ++w) {
        const int64_t b = w / p.groups, g = w % p.groups;
        small_gemm(p.seq, O, I, x_at(b, g), p.x_stride_s, wT + g * I * O, O, p.y + out_at(b, g), ld_out);
      }
    });
  }

  // dx = dy W[g] per (b, g); dW[g] = Σ_b dyᵀ x, groups split between threads.
  void backward(T* dw) const {
    const int64_t width = p.in_width();
    at::parallel_for(0, p.batch * p.groups, 1, [&](int64_t first, int64_t last) {
      for (int64_t w = first; w < last; ++w) {
        const int64_t b = w / p.groups, g = w % p.groups;
        small_gemm(p.seq, I, O, p.dy + out_at(b, g), ld_out, p.weight + g * O * I, I, p.dx + b * p.seq * width + g * I,
                   width);
      }
    });
    at::parallel_for(0, p.groups, 1, [&](int64_t g0, int64_t g1) {
      for (int64_t g = g0; g < g1; ++g) {
        T* dw_g = dw + g * O * I;
        std::fill_n(dw_g, O * I, T(0));
        for (int64_t b = 0; b < p.batch; ++b)
          small_gemm_accumulate<T, true>(O, I, p.seq, p.dy + out_at(b, g), ld_out, x_at(b, g), p.x_stride_s, dw_g, I);
      }
    });
  }
};

// The layers' 4 x 4 blocks in float32: a vector holds whole blocks, 4 lanes each, and each of y,
// dx and dW is a sum of 4 products of a vector by a broadcast of one lane within every block (an
// in-lane shuffle), against weight tables laid out to match. Needs each head's width in y to be
// whole vectors.
namespace quad_blocks {

using simd::load;
using simd::store;
using Vec = simd::Vector<float>;
constexpr int64_t kLanes = simd::kLanes<float>;
typedef int32_t LaneIndex __attribute__((vector_size(simd::kVectorBytes)));

// Lane k of every block of 4 lanes, broadcast across its block.
template <int k>
inline Vec lane_of_each_block(const Vec& v) {
  LaneIndex index;
  for (int j = 0; j < kLanes; ++j) index[j] = (j & ~3) + k;
  return __builtin_shuffle(v, index);
}

// table[k][4 g + j] = W[g, k, j] (by_output: indexed by output unit k, the dx table) or
// W[g, j, k] (the forward table, indexed by input unit k); 4 tables of 4 G floats.
inline std::vector<float> weight_tables(const float* weight, int64_t G, bool by_output) {
  std::vector<float> table(16 * G);
  for (int64_t g = 0; g < G; ++g)
    for (int k = 0; k < 4; ++k)
      for (int j = 0; j < 4; ++j)
        table[k * 4 * G + 4 * g + j] = by_output ? weight[(4 * g + k) * 4 + j] : weight[(4 * g + j) * 4 + k];
  return table;
}

inline bool applies(const HeadwiseLinearInputs& in) {
  return in.O == 4 && in.I == 4 && (in.G * 4 / in.heads) % kLanes == 0;
}

// fn(offset of the row's features c .. c + kLanes - 1 in y / dy, c) for every vector of row n.
template <typename Fn>
inline void for_each_vector(const HeadwiseLinearParams<float, float>& p, int64_t n, const Fn& fn) {
  const int64_t width = p.out_width() / p.heads, head_stride = p.seq * width, row = p.out_index(n, 0);
  for (int64_t h = 0; h < p.heads; ++h)
    for (int64_t c = 0; c < width; c += kLanes) fn(row + h * head_stride + c, h * width + c);
}

// Lanes 0-3 of every block of v, each broadcast across its block.
struct BlockLanes {
  Vec lane[4];
  explicit BlockLanes(const Vec& v)
      : lane{lane_of_each_block<0>(v), lane_of_each_block<1>(v), lane_of_each_block<2>(v), lane_of_each_block<3>(v)} {}
};

// Σ_k table[k] (at c) * lane k, per block; the tables are 4 G = width floats apart.
inline Vec combine(const float* table, int64_t width, int64_t c, const BlockLanes& v) {
  return load(table + c) * v.lane[0] + load(table + width + c) * v.lane[1] + load(table + 2 * width + c) * v.lane[2] +
         load(table + 3 * width + c) * v.lane[3];
}

inline void forward(const HeadwiseLinearParams<float, float>& p) {
  const std::vector<float> table = weight_tables(p.weight, p.groups, false);
  at::parallel_for(0, p.rows(), kRowGrain, [&](int64_t first, int64_t last) {
    for (int64_t n = first; n < last; ++n) {
      const float* x = p.x_row(n);
      for_each_vector(p, n, [&](int64_t at, int64_t c) {
        store(p.y + at, combine(table.data(), 4 * p.groups, c, BlockLanes(load(x + c))));
      });
    }
  });
}

// dx and dW in one pass over the rows: per part (a range of rows) its own dW sums
// (sums[k][4 g + i] = Σ_n dy[n, g, k] x[n, g, i]), added up at the end. The parts depend on the rows
// alone, not on the thread count, so that dW is bitwise the same for any number of threads.
constexpr int64_t kMaxBackwardParts = 32;
inline void backward(const HeadwiseLinearParams<float, float>& p, float* dw) {
  const int64_t G = p.groups, width = 4 * G;
  const std::vector<float> table = weight_tables(p.weight, G, true);
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(kMaxBackwardParts, p.rows() / kRowGrain));
  std::vector<std::vector<float>> sums(parts, std::vector<float>(4 * width, 0.f));
  at::parallel_for(0, parts, 1, [&](int64_t part0, int64_t part1) {
    for (int64_t part = part0; part < part1; ++part) {
      float* s = sums[part].data();
      for (int64_t n = p.rows() * part / parts; n < p.rows() * (part + 1) / parts; ++n) {
        const float* x = p.x_row(n);
        float* dx = p.dx + n * width;
        for_each_vector(p, n, [&](int64_t at, int64_t c) {
          const BlockLanes dy(load(p.dy + at));
          const Vec xv = load(x + c);
          store(dx + c, combine(table.data(), width, c, dy));
          for (int k = 0; k < 4; ++k) store(s + k * width + c, load(s + k * width + c) + dy.lane[k] * xv);
        });
      }
    }
  });
  for (int64_t g = 0; g < G; ++g)
    for (int k = 0; k < 4; ++k)
      for (int i = 0; i < 4; ++i) {
        float total = 0.f;
        for (const std::vector<float>& part : sums) total += part[k * width + 4 * g + i];
        dw[(4 * g + k) * 4 + i] = total;
      }
}

}  // namespace quad_blocks

// The vector paths: 4 x 4 float32 blocks as above, other float32 / float64 blocks as small GEMMs;
// true where one ran.
template <typename scalar_t, typename acc_t>
bool headwise_linear_vector_forward(const HeadwiseLinearInputs& in, const HeadwiseLinearParams<scalar_t, acc_t>& p) {
  if constexpr (std::is_same_v<scalar_t, float> && std::is_same_v<acc_t, float>) {
    if (quad_blocks::applies(in)) {
      quad_blocks::forward(p);
      return true;
    }
  }
  if constexpr (std::is_same_v<scalar_t, acc_t>) {
    if (!(in.O == 4 && in.I == 4)) {
      const Tensor wT = in.weight.transpose(1, 2).contiguous();
      HeadwiseLinearGemm<acc_t>{p}.forward(wT.data_ptr<acc_t>());
      return true;
    }
  }
  return false;
}

template <typename scalar_t, typename acc_t>
bool headwise_linear_vector_backward(const HeadwiseLinearInputs& in, const HeadwiseLinearParams<scalar_t, acc_t>& p,
                                     acc_t* dw) {
  if constexpr (std::is_same_v<scalar_t, float> && std::is_same_v<acc_t, float>) {
    if (quad_blocks::applies(in)) {
      quad_blocks::backward(p, dw);
      return true;
    }
  }
  if constexpr (std::is_same_v<scalar_t, acc_t>) {
    if (!(in.O == 4 && in.I == 4)) {
      HeadwiseLinearGemm<acc_t>{p}.backward(dw);
      return true;
    }
  }
  return false;
}

template <typename Fn>
void with_block_sizes(const HeadwiseLinearInputs& in, const Fn& fn) {
  if (in.O == 4 && in.I == 4) {
    fn(std::integral_constant<int, 4>());
  } else {
    fn(std::integral_constant<int, 0>());
  }
}

}  // namespace

Tensor headwise_linear_cpu(const Tensor& x, const Tensor& weight, int64_t heads) {
  const HeadwiseLinearInputs in = headwise_linear_inputs(x, weight, heads, "headwise_linear", at::kCPU, true);
  Tensor y = headwise_linear_output(in, empty_cpu_output);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, in.x.scalar_type(), "headwise_linear_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto p = headwise_linear_params<scalar_t, acc_t>(in, y, Tensor(), Tensor());
    if (headwise_linear_vector_forward(in, p)) return;
    with_block_sizes(in, [&](auto block) {
      at::parallel_for(0, in.B * in.S, kRowGrain, [&](int64_t first, int64_t last) {
        headwise_linear_fwd_rows<decltype(block)::value, decltype(block)::value>(p, first, last);
      });
    });
  });
  return y;
}

std::tuple<Tensor, Tensor> headwise_linear_backward_cpu(const Tensor& dy, const Tensor& x, const Tensor& weight,
                                                        int64_t heads) {
  const char* op = "headwise_linear_backward";
  const HeadwiseLinearInputs in = headwise_linear_inputs(x, weight, heads, op, at::kCPU, true);
  const Tensor dy_c = headwise_linear_dy(in, dy, op);
  Tensor dx = headwise_linear_dx(in, empty_cpu_output), dw = at::empty_like(in.weight);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, in.x.scalar_type(), "headwise_linear_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto p = headwise_linear_params<scalar_t, acc_t>(in, Tensor(), dy_c, dx);
    acc_t* dw_out = dw.data_ptr<acc_t>();
    if (headwise_linear_vector_backward(in, p, dw_out)) return;
    with_block_sizes(in, [&](auto block) {
      at::parallel_for(0, in.B * in.S, kRowGrain, [&](int64_t first, int64_t last) {
        headwise_linear_dx_rows<decltype(block)::value, decltype(block)::value>(p, first, last);
      });
      at::parallel_for(0, in.G, kGroupGrain, [&](int64_t g0, int64_t g1) {
        headwise_linear_dw_groups<decltype(block)::value, decltype(block)::value>(p, g0, g1, dw_out);
      });
    });
  });
  return {dx, dw.to(weight.scalar_type())};
}

}  // namespace xlstm

XLSTM_CPU_KERNELS(m) {
  m.impl("headwise_linear", &xlstm::headwise_linear_cpu);
  m.impl("headwise_linear_backward", &xlstm::headwise_linear_backward_cpu);
}
