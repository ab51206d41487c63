// Scalar math shared by the CPU and CUDA kernels (float or double; no ATen types).
#pragma once

#include <cmath>

#include "common/cuda_compat.h"

// Before a CPU loop whose iterations are independent: lets GCC vectorize it without runtime
// alias checks between its many state pointers.
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#define XLSTM_INDEPENDENT_ITERATIONS _Pragma("GCC ivdep")
#else
#define XLSTM_INDEPENDENT_ITERATIONS
#endif

// Before a CPU loop that sums into `var`: lets the compiler vectorize the sum, which it may not
// reorder otherwise (partial sums per lane, added at the end: another rounding order, as accurate).
// Needs -fopenmp or -fopenmp-simd; elsewhere a no-op.
#define XLSTM_PRAGMA(x) _Pragma(#x)
#if defined(_OPENMP)
#define XLSTM_VECTOR_SUM(var) XLSTM_PRAGMA(omp simd reduction(+ : var))
#else
#define XLSTM_VECTOR_SUM(var)
#endif

namespace xlstm {

XLSTM_HOST_DEVICE float exp_(float x) { return expf(x); }
XLSTM_HOST_DEVICE double exp_(double x) { return exp(x); }
XLSTM_HOST_DEVICE float log1p_(float x) { return log1pf(x); }
XLSTM_HOST_DEVICE double log1p_(double x) { return log1p(x); }
XLSTM_HOST_DEVICE float tanh_(float x) { return tanhf(x); }
XLSTM_HOST_DEVICE double tanh_(double x) { return tanh(x); }
XLSTM_HOST_DEVICE float abs_(float x) { return fabsf(x); }
XLSTM_HOST_DEVICE double abs_(double x) { return fabs(x); }
XLSTM_HOST_DEVICE float sqrt_(float x) { return sqrtf(x); }
XLSTM_HOST_DEVICE double sqrt_(double x) { return sqrt(x); }

template <typename T>
XLSTM_HOST_DEVICE T max_(T a, T b) { return a < b ? b : a; }

template <typename T>
XLSTM_HOST_DEVICE T min_(T a, T b) { return b < a ? b : a; }

// log(sigmoid(x)) = -softplus(-x), without overflow for large |x|, and sigmoid(-x), its derivative,
// from the same exponential. Branch-free (selects only), so that CPU loops over it vectorize and GPU
// warps do not diverge.
template <typename T>
struct LogSigmoid {
  T value, derivative;
};
template <typename T>
XLSTM_HOST_DEVICE LogSigmoid<T> log_sigmoid_with_derivative(T x) {
  const T e = exp_(-abs_(x));
  return {min_(x, T(0)) - log1p_(e), (x > T(0) ? e : T(1)) / (T(1) + e)};
}

template <typename T>
XLSTM_HOST_DEVICE T log_sigmoid(T x) {
  return log_sigmoid_with_derivative(x).value;
}

template <typename T>
XLSTM_HOST_DEVICE T sigmoid(T x) {
  const T e = exp_(-abs_(x));
  return (x < T(0) ? e : T(1)) / (T(1) + e);
}

// SiLU (x σ(x)): the layers' activation after the conv and on the output gate.
template <typename T>
XLSTM_HOST_DEVICE T silu(T x) {
  return x * sigmoid(x);
}

// d silu(x) / dx = σ(x) (1 + x (1 - σ(x))).
template <typename T>
XLSTM_HOST_DEVICE T silu_derivative(T x) {
  const T s = sigmoid(x);
  return s * (T(1) + x * (T(1) - s));
}

template <typename T>
XLSTM_HOST_DEVICE T sign(T x) {
  return T((x > T(0)) - (x < T(0)));
}

// A value carried as an unevaluated sum hi + lo, lo holding what rounding hi lost (|lo| <= ulp(hi) / 2):
// a float with about twice its precision, for sums of many terms that later feed exp of a difference
// of two such sums, where float rounding of either alone would already cost ulp(|sum|) in the result.
// Only additions and subtractions, so FMA contraction cannot change them; they rely on the kernels
// being compiled without -ffast-math (no reassociation), as they are (setup.py).
template <typename T>
struct Split {
  T hi, lo;
};

// The low part of a split whose high part is hi: lo, or 0 where hi is infinite or NaN (there the
// error terms are inf - inf = NaN, and an infinite value needs no low part: -inf stays a zero weight).
template <typename T>
XLSTM_HOST_DEVICE T split_low(T hi, T lo) {
  return hi - hi == T(0) ? lo : T(0);
}

// a + b exactly, as rounded sum and rounding error (Knuth's two-sum: any magnitudes).
template <typename T>
XLSTM_HOST_DEVICE Split<T> two_sum(T a, T b) {
  const T s = a + b, b_part = s - a;
  return {s, split_low(s, (a - (s - b_part)) + (b - b_part))};
}

// x + y to about twice T's precision, renormalised.
template <typename T>
XLSTM_HOST_DEVICE Split<T> split_add(Split<T> x, Split<T> y) {
  const Split<T> s = two_sum(x.hi, y.hi);
  const T lo = s.lo + (x.lo + y.lo), hi = s.hi + lo;
  return {hi, split_low(hi, lo - (hi - s.hi))};
}

// x - y rounded to T: the difference of the leading parts first, exact where they are close.
template <typename T>
XLSTM_HOST_DEVICE T split_difference(Split<T> x, Split<T> y) {
  return (x.hi - y.hi) + (x.lo - y.lo);
}

// max(x, y) of renormalised splits (hi first, then lo); like max_, the first argument on a tie or NaN.
template <typename T>
XLSTM_HOST_DEVICE Split<T> split_max(Split<T> x, Split<T> y) {
  return x.hi < y.hi || (x.hi == y.hi && x.lo < y.lo) ? y : x;
}

// Gradient of max(a, b) split as torch.maximum does: all to the larger, half each on a tie.
template <typename T>
struct MaxGrad {
  T da, db;
};
template <typename T>
XLSTM_HOST_DEVICE MaxGrad<T> max_backward(T a, T b, T grad) {
  if (a > b) return {grad, T(0)};
  if (b > a) return {T(0), grad};
  return {grad / T(2), grad / T(2)};
}

}  // namespace xlstm
