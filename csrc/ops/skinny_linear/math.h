// y = x Wᵀ (+ b) for a few rows of x (decode steps, small batches) on the CPU: bound by reading W,
// which a BLAS GEMV / skinny GEMM streams well below the memory bandwidth here and does not
// spread over threads (BENCHMARKS.md). Each thread owns a range of W's rows and reads each row
// once, from memory, in order: one row against one x row as a single stream (M = 1), or kWeightRows
// rows against kInputRows rows of x at a time, the products accumulated in registers across K. A
// bfloat16 weight (W = uint16_t, its bits) is widened to float32 as it is loaded: half the bytes
// to read, the same float32 products.
#pragma once

#include <cstdint>

#include "cpu/simd.h"

namespace xlstm {

template <typename T, typename W = T>
struct SkinnyLinearParams {
  const T* x;       // (M, K), rows x_stride apart, unit stride along K
  const W* weight;  // (N, K), rows weight_stride apart, unit stride along K: T, or bfloat16 bits for T = float
  const T* bias;    // (N), or null
  T* y;             // (M, N), rows y_stride apart (N: dense; more: columns of a wider output)
  int64_t M = 0, N = 0, K = 0, x_stride = 0, weight_stride = 0, y_stride = 0;
};

namespace skinny_linear {

using simd::kLanes;
using simd::load;
using simd::Vector;

constexpr int kWeightRows = 4;
// x rows per register block: 4 x 4 accumulators and 8 operands fit AVX-512's 32 registers; AVX2's
// and SSE's 16 take 4 x 2.
constexpr int kInputRows = simd::kVectorBytes == 64 ? 4 : 2;

// The sum of a vector's lanes by halving (log2 lanes vector adds, not lanes - 1 scalar ones: a
// block's 16 sums would otherwise cost as much as its products at K = 256).
template <typename T, int kCount>
struct Lanes {
  typedef T type __attribute__((vector_size(kCount * sizeof(T))));
};

template <typename T, int kCount>
inline T fold_lanes(const typename Lanes<T, kCount>::type& v) {
  if constexpr (kCount == 1) {
    return v[0];
  } else {
    typename Lanes<T, kCount / 2>::type low, high;
    __builtin_memcpy(&low, &v, sizeof low);
    __builtin_memcpy(&high, reinterpret_cast<const char*>(&v) + sizeof low, sizeof high);
    return fold_lanes<T, kCount / 2>(low + high);
  }
}

template <typename T>
inline T sum_lanes(const Vector<T>& v) {
  return fold_lanes<T, kLanes<T>>(v);
}

// A weight vector (or element) as T: loaded as it is, or bfloat16 bits widened to float32 (the
// bits are float32's upper half).
template <typename T>
inline Vector<T> load_weights(const T* p) {
  return load(p);
}

inline Vector<float> load_weights(const uint16_t* p) {
  typedef uint16_t Bits __attribute__((vector_size(kLanes<float> * sizeof(uint16_t))));
  typedef uint32_t Words __attribute__((vector_size(kLanes<float> * sizeof(uint32_t))));
  Bits bits;
  __builtin_memcpy(&bits, p, sizeof bits);
  const Words words = __builtin_convertvector(bits, Words) << 16;
  Vector<float> v;
  __builtin_memcpy(&v, &words, sizeof v);
  return v;
}

template <typename T>
inline T weight_value(const T* p) {
  return *p;
}

inline float weight_value(const uint16_t* p) {
  const uint32_t word = uint32_t(*p) << 16;
  float v;
  __builtin_memcpy(&v, &word, sizeof v);
  return v;
}

// M = 1: y[n] = w_n · x for rows [n0, n1), four partial sums per row (the FMA latency).
template <typename T, typename W>
void one_row(const SkinnyLinearParams<T, W>& p, int64_t n0, int64_t n1) {
  constexpr int64_t L = kLanes<T>;
  const int64_t K = p.K, K4 = K / (4 * L) * (4 * L), K1 = K / L * L;
  for (int64_t n = n0; n < n1; ++n) {
    const W* w = p.weight + n * p.weight_stride;
    const T* x = p.x;
    Vector<T> a0{}, a1{}, a2{}, a3{};
    int64_t k = 0;
    for (; k < K4; k += 4 * L) {
      a0 += load_weights(w + k) * load(x + k);
      a1 += load_weights(w + k + L) * load(x + k + L);
      a2 += load_weights(w + k + 2 * L) * load(x + k + 2 * L);
      a3 += load_weights(w + k + 3 * L) * load(x + k + 3 * L);
    }
    for (; k < K1; k += L) a0 += load_weights(w + k) * load(x + k);
    T s = sum_lanes<T>((a0 + a1) + (a2 + a3));
    for (; k < K; ++k) s += weight_value(w + k) * x[k];
    p.y[n] = p.bias != nullptr ? s + p.bias[n] : s;
  }
}

// y[m + s, n + r] for r < kRows weight rows and s < kCols x rows.
template <int kRows, int kCols, typename T, typename W>
inline void block(const SkinnyLinearParams<T, W>& p, int64_t n, int64_t m) {
  constexpr int64_t L = kLanes<T>;
  const int64_t K = p.K, K1 = K / L * L;
  const W* w[kRows];
  const T* x[kCols];
  for (int r = 0; r < kRows; ++r) w[r] = p.weight + (n + r) * p.weight_stride;
  for (int s = 0; s < kCols; ++s) x[s] = p.x + (m + s) * p.x_stride;
  Vector<T> acc[kRows][kCols] = {};
  for (int64_t k = 0; k < K1; k += L) {
    Vector<T> wv[kRows], xv[kCols];
    for (int r = 0; r < kRows; ++r) wv[r] = load_weights(w[r] + k);
    for (int s = 0; s < kCols; ++s) xv[s] = load(x[s] + k);
    for (int r = 0; r < kRows; ++r)
      for (int s = 0; s < kCols; ++s) acc[r][s] += wv[r] * xv[s];
  }
  for (int r = 0; r < kRows; ++r)
    for (int s = 0; s < kCols; ++s) {
      T sum = sum_lanes<T>(acc[r][s]);
      for (int64_t k = K1; k < K; ++k) sum += weight_value(w[r] + k) * x[s][k];
      p.y[(m + s) * p.y_stride + n + r] = p.bias != nullptr ? sum + p.bias[n + r] : sum;
    }
}

// kRows weight rows from n against every x row: kInputRows at a time, then pairs, then one.
template <int kRows, typename T, typename W>
inline void weight_rows(const SkinnyLinearParams<T, W>& p, int64_t n) {
  int64_t m = 0;
  for (; m + kInputRows <= p.M; m += kInputRows) block<kRows, kInputRows>(p, n, m);
  if constexpr (kInputRows > 2) {
    for (; m + 2 <= p.M; m += 2) block<kRows, 2>(p, n, m);
  }
  for (; m < p.M; ++m) block<kRows, 1>(p, n, m);
}

// Rows [n0, n1) of W against all of x: y's columns n0 .. n1 - 1.
template <typename T, typename W>
void rows(const SkinnyLinearParams<T, W>& p, int64_t n0, int64_t n1) {
  if (p.M == 1) return one_row(p, n0, n1);
  int64_t n = n0;
  for (; n + kWeightRows <= n1; n += kWeightRows) weight_rows<kWeightRows>(p, n);
  for (; n < n1; ++n) weight_rows<1>(p, n);
}

}  // namespace skinny_linear
}  // namespace xlstm
