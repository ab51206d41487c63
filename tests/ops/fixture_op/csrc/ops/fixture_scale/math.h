// fixture_scale, a test-only op in the layout of every op (csrc/README.md): y = x w per feature;
// backward dx = dy w, dw = Σ_rows dy x. The smallest op with an input gradient and a reduced weight
// gradient. No ATen types here.
#pragma once

#include <cstdint>

#include "common/cuda_compat.h"

namespace xlstm {

// x, y, dy, dx (rows, dim) contiguous in scalar_t; w (dim) in acc_t.
template <typename scalar_t, typename acc_t>
struct FixtureScaleParams {
  int64_t rows, dim;
  const scalar_t* x;
  const acc_t* w;
  scalar_t* y;
  const scalar_t* dy;
  scalar_t* dx;
};

}  // namespace xlstm
