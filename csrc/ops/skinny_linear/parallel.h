// The weight rows of skinny_linear products split over the threads (CPU kernel files): the op's
// own entry point and the fused decode steps that run several products on one input.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

#include "ops/skinny_linear/math.h"

namespace xlstm {

// parts[0 .. count): products whose weights' rows, taken in order, are split over the threads as
// one weight (a model's q, k, v and o maps as one pass): blocks of kWeightRows rows, a thread's share
// at least 64 KiB of weight so that small maps stay on one thread. Each part writes its own y.
template <typename T, typename W>
void skinny_linear_parallel(const SkinnyLinearParams<T, W>* parts, int64_t count) {
  constexpr int64_t kRows = skinny_linear::kWeightRows;
  int64_t total = 0, K = 1;
  for (int64_t j = 0; j < count; ++j) total += parts[j].N, K = std::max(K, parts[j].K);
  const int64_t blocks = (total + kRows - 1) / kRows;
  const int64_t grain = std::max<int64_t>(1, (64 << 10) / (kRows * K * int64_t(sizeof(W))));
  at::parallel_for(0, blocks, grain, [&](int64_t b0, int64_t b1) {
    const int64_t n0 = b0 * kRows, n1 = std::min(b1 * kRows, total);
    int64_t offset = 0;  // the part's first row in the concatenation
    for (int64_t j = 0; j < count; offset += parts[j].N, ++j) {
      const int64_t lo = std::max<int64_t>(n0 - offset, 0), hi = std::min(n1 - offset, parts[j].N);
      if (lo < hi) skinny_linear::rows(parts[j], lo, hi);
    }
  });
}

}  // namespace xlstm
