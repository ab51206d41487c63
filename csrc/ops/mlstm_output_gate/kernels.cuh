// CUDA kernels of the mLSTM output gate: a block per (tile of rows, head), a warp per row's head
// segment at a time (its lanes stride over the DH features, so the statistics are warp sums and
// every access is coalesced). The backward keeps each warp's weight-gradient sums and the
// segment's dĥ in shared memory (per warp: 3 DH floats), then sums the warps' into
// partial[blockIdx.x] ((2, D): d norm_weight, d skip).
#pragma once

#include "common/cuda_compat.h"
#include "cuda/block_reduce.cuh"
#include "ops/mlstm_output_gate/math.h"

namespace xlstm {

// mean and ρ of one head's segment of DH features, in every lane of the warp; the mean summed
// relative to x[0], as the CPU kernels' feature_stats (equal features give exact zeros).
template <typename scalar_t>
struct WarpSegmentStats {
  float mean, rstd;
  __device__ WarpSegmentStats(const scalar_t* x, int64_t n, float eps) {
    const int lane = threadIdx.x;
    const float shift = static_cast<float>(x[0]);
    float sum = 0.f;
    for (int64_t j = lane; j < n; j += warpSize) sum += static_cast<float>(x[j]) - shift;
    mean = shift + warp_sum(sum) / static_cast<float>(n);
    float sq = 0.f;
    for (int64_t j = lane; j < n; j += warpSize) {
      const float d = static_cast<float>(x[j]) - mean;
      sq += d * d;
    }
    rstd = mlstm_norm_rstd(warp_sum(sq), n, eps);
  }
};

template <typename scalar_t>
__global__ void mlstm_output_gate_fwd_kernel(MlstmOutputGateParams<scalar_t, float> p, int64_t rows_per_block) {
  const int64_t g = blockIdx.y, o = g * p.DH, D = p.dim();
  const int64_t first = blockIdx.x * rows_per_block;
  const int64_t last = first + rows_per_block < p.rows() ? first + rows_per_block : p.rows();
  for (int64_t r = first + threadIdx.y; r < last; r += blockDim.y) {
    const scalar_t* hs = p.h_segment(r, g);
    const WarpSegmentStats<scalar_t> st(hs, p.DH, p.eps);
    const scalar_t *x_row = p.x_conv_row(r) + o, *z_row = p.z_row(r) + o;
    for (int64_t j = threadIdx.x; j < p.DH; j += warpSize)
      p.y[r * D + o + j] = static_cast<scalar_t>(
          mlstm_output_gate((static_cast<float>(hs[j]) - st.mean) * st.rstd, static_cast<float>(x_row[j]),
                            static_cast<float>(z_row[j]), p.w[o + j], p.s[o + j]));
  }
}

template <typename scalar_t>
__global__ void mlstm_output_gate_bwd_kernel(MlstmOutputGateParams<scalar_t, float> p, int64_t rows_per_block,
                                             float* partial) {
  XLSTM_DYNAMIC_SHARED(float, scratch);  // per warp: dw sums, ds sums, the segment's dĥ (DH each)
  const int64_t g = blockIdx.y, o = g * p.DH, D = p.dim(), DH = p.DH;
  const int64_t first = blockIdx.x * rows_per_block;
  const int64_t last = first + rows_per_block < p.rows() ? first + rows_per_block : p.rows();
  float *dw_sum = scratch + threadIdx.y * 3 * DH, *ds_sum = dw_sum + DH, *dhn = ds_sum + DH;
  for (int64_t j = threadIdx.x; j < DH; j += warpSize) dw_sum[j] = ds_sum[j] = 0.f;
  for (int64_t r = first + threadIdx.y; r < last; r += blockDim.y) {
    const scalar_t* hs = p.h_segment(r, g);
    const WarpSegmentStats<scalar_t> st(hs, DH, p.eps);
    const scalar_t *x_row = p.x_conv_row(r) + o, *z_row = p.z_row(r) + o;
    const int64_t e = r * D + o;
    float sum_d = 0.f, sum_dh = 0.f;
    for (int64_t j = threadIdx.x; j < DH; j += warpSize) {
      const float hn = (static_cast<float>(hs[j]) - st.mean) * st.rstd;
      const MlstmOutputGateGrads<float> gr =
          mlstm_output_gate_backward(static_cast<float>(p.dy[e + j]), hn, static_cast<float>(x_row[j]),
                                     static_cast<float>(z_row[j]), p.w[o + j], p.s[o + j]);
      p.dx_conv[e + j] = static_cast<scalar_t>(gr.dx_conv);
      p.dz[e + j] = static_cast<scalar_t>(gr.dz);
      dw_sum[j] += gr.dw;
      ds_sum[j] += gr.ds;
      dhn[j] = gr.dh_normed;
      sum_d += gr.dh_normed;
      sum_dh += gr.dh_normed * hn;
    }
    const float mean_d = warp_sum(sum_d) / static_cast<float>(DH), mean_dh = warp_sum(sum_dh) / static_cast<float>(DH);
    scalar_t* dh_out = p.dh_segment(r, g);
    for (int64_t j = threadIdx.x; j < DH; j += warpSize) {  // each lane reads back only its own dĥ
      const float hn = (static_cast<float>(hs[j]) - st.mean) * st.rstd;
      dh_out[j] = static_cast<scalar_t>(mlstm_norm_backward(dhn[j], hn, st.rstd, mean_d, mean_dh));
    }
  }
  __syncthreads();
  const int64_t threads = blockDim.x * blockDim.y;
  for (int64_t j = threadIdx.y * blockDim.x + threadIdx.x; j < DH; j += threads) {
    float dw = 0.f, ds = 0.f;
    for (unsigned w = 0; w < blockDim.y; ++w) {
      dw += scratch[w * 3 * DH + j];
      ds += scratch[w * 3 * DH + DH + j];
    }
    partial[(blockIdx.x * 2) * D + o + j] = dw;
    partial[(blockIdx.x * 2 + 1) * D + o + j] = ds;
  }
}

}  // namespace xlstm
