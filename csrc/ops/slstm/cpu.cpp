#include "cpu/vector_math.h"  // first: before anything declares the math functions

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <vector>

#include "common/registration.h"
#include "cpu/small_gemm.h"
#include "ops/slstm/cpu_tile.h"
#include "ops/slstm/host.h"

namespace xlstm {
namespace {

// CPU backward for one head and a tile of batch rows: writes d_raw for every step and the
// initial-state grads. work: 3*rows*DH scratch (dh, dc, dn carried backwards).
template <typename scalar_t, typename acc_t>
void slstm_bwd_tile(const SlstmBwdParams<scalar_t, acc_t>& p, int64_t h, int64_t b0, int64_t rows, acc_t* work) {
  const int64_t DH = p.dh, G = 4 * DH, BND = p.batch * p.heads * DH;
  const acc_t* RT = p.RT + h * G * DH;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t at = ((b0 + r) * p.heads + h) * DH;
    for (int64_t j = 0; j < DH; ++j) {
      work[r * DH + j] = p.d_last[at + j];
      work[(rows + r) * DH + j] = p.d_last[BND + at + j];
      work[(2 * rows + r) * DH + j] = p.d_last[2 * BND + at + j];
    }
  }
  for (int64_t t = p.seq - 1; t >= 0; --t) {
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t b = b0 + r, step = (b * p.seq + t) * p.heads + h;
      const acc_t* gates = p.trace + p.trace_index(3, b, t + 1, h);
      const int64_t plane = p.plane();
      acc_t* d_raw = p.d_raw + step * G;
      const scalar_t* dh_out = p.d_h + step * DH;
      const acc_t* c_prev = p.trace + p.trace_index(1, b, t, h);
      const acc_t* n_prev = p.trace + p.trace_index(2, b, t, h);
      acc_t *dh = work + r * DH, *dc = work + (rows + r) * DH, *dn = work + (2 * rows + r) * DH;
      XLSTM_INDEPENDENT_ITERATIONS
      for (int64_t j = 0; j < DH; ++j) {
        const SlstmGates<acc_t> g = slstm_load_gates(gates, plane, j);
        const SlstmCellGrads<acc_t> d =
            slstm_cell_backward(g, c_prev[j], n_prev[j], acc_t(dh_out[j]) + dh[j], dc[j], dn[j]);
        d_raw[j] = d.d_raw[0];
        d_raw[DH + j] = d.d_raw[1];
        d_raw[2 * DH + j] = d.d_raw[2];
        d_raw[3 * DH + j] = d.d_raw[3];
        dc[j] = d.dc_prev;
        dn[j] = d.dn_prev;
        dh[j] = 0;
      }
    }
    // dh[t-1] = d_raw Rᵀ.
    const acc_t* d_raw = p.d_raw + (b0 * p.seq + t) * p.heads * G + h * G;  // rows seq·heads·G apart
    small_gemm_accumulate(rows, DH, G, d_raw, p.seq * p.heads * G, RT, DH, work, DH);
  }
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t at = ((b0 + r) * p.heads + h) * DH;
    for (int64_t j = 0; j < DH; ++j) {
      p.d_first[at + j] = work[r * DH + j];
      p.d_first[BND + at + j] = work[(rows + r) * DH + j];
      p.d_first[2 * BND + at + j] = work[(2 * rows + r) * DH + j];
    }
  }
}

// Runs fn(head, first batch row, rows) over (head, batch tile) pairs in parallel.
template <typename Fn>
void for_each_tile(const SlstmInputs& in, const Fn& fn) {
  const int64_t tiles = (in.B + kSlstmCpuBatchTile - 1) / kSlstmCpuBatchTile;
  at::parallel_for(0, in.NH * tiles, 1, [&](int64_t begin, int64_t end) {
    for (int64_t w = begin; w < end; ++w) {
      const int64_t b0 = (w % tiles) * kSlstmCpuBatchTile;
      fn(w / tiles, b0, std::min(kSlstmCpuBatchTile, in.B - b0));
    }
  });
}

}  // namespace

Tensors3 slstm_forward_cpu(const Tensor& x, const Tensor& R, const Tensor& b, const Tensor& initial, bool save_trace) {
  const SlstmInputs in = slstm_inputs(x, R, b, initial, "slstm_forward", at::kCPU, true);
  auto [h, trace] = slstm_forward_outputs(in, save_trace, empty_cpu_output);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, in.x.scalar_type(), "slstm_forward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    SlstmParams<scalar_t, acc_t> p;
    slstm_fill_params(p, in, trace);
    p.h_out = h.data_ptr<scalar_t>();
    for_each_tile(in, [&](int64_t h, int64_t b0, int64_t rows) {
      std::vector<acc_t> raw(rows * 4 * in.DH);
      slstm_fwd_tile(p, h, b0, rows, raw.data());
    });
  });
  return slstm_forward_result(in, h, trace);
}

Tensors4 slstm_backward_cpu(const Tensor& dh, const Tensor& d_last, const Tensor& x, const Tensor& R,
                            const Tensor& b, const Tensor& trace, std::array<bool, 4> needs) {
  const char* op = "slstm_backward";
  const SlstmInputs in = slstm_inputs(x, R, b, trace.narrow(0, 0, 4).select(2, 0), op, at::kCPU, true);
  const SlstmBackwardTensors t = slstm_backward_tensors(in, dh, d_last, trace, op, empty_cpu_output);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, in.x.scalar_type(), "slstm_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto p = slstm_bwd_params<scalar_t, acc_t>(in, t);
    for_each_tile(in, [&](int64_t h, int64_t b0, int64_t rows) {
      std::vector<acc_t> work(3 * rows * in.DH);
      slstm_bwd_tile(p, h, b0, rows, work.data());
    });
  });
  // dR per head, one BLAS product per batch row on strided views of the trace and d_raw (an einsum
  // would first copy both into head-major layouts).
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  const SlstmNeeds need = slstm_needs(needs);
  Tensor dR;
  if (need.R) {
    const Tensor h_prev = slstm_h_prev(in, t);
    dR = at::zeros({in.NH, in.DH, 4 * in.DH}, t.d_raw.options());
    at::parallel_for(0, in.NH, 1, [&](int64_t h0, int64_t h1) {
      for (int64_t h = h0; h < h1; ++h) {
        Tensor dR_h = dR[h];
        for (int64_t b = 0; b < in.B; ++b) dR_h.addmm_(h_prev[b].select(1, h).t(), t.d_raw[b].select(1, h));
      }
    });
  }
  return slstm_backward_result(in, t, dR, R, b, need);
}

}  // namespace xlstm

XLSTM_CPU_KERNELS(m) {
  m.impl("slstm_forward", &xlstm::slstm_forward_cpu);
  m.impl("slstm_backward", &xlstm::slstm_backward_cpu);
}
