// The CPU kernels' layer norm of one row without its scale: the multi-head norm of one head in the
// fused layer steps.
#pragma once

#include <cmath>
#include <cstdint>

#include "common/numerics.h"

namespace xlstm {

// x (n features) normalised in place: (x - mean) / sqrt(var + eps), var the biased variance (the
// multi-head norm of one head, before its scale).
template <typename T>
inline void normalise_features(T* x, int64_t n, T eps) {
  T sum = 0;
  XLSTM_VECTOR_SUM(sum)
  for (int64_t j = 0; j < n; ++j) sum += x[j];
  const T mean = sum / T(n);
  T squares = 0;
  XLSTM_VECTOR_SUM(squares)
  for (int64_t j = 0; j < n; ++j) squares += (x[j] - mean) * (x[j] - mean);
  const T scale = T(1) / std::sqrt(squares / T(n) + eps);
  XLSTM_INDEPENDENT_ITERATIONS
  for (int64_t j = 0; j < n; ++j) x[j] = (x[j] - mean) * scale;
}

}  // namespace xlstm
