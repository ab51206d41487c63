// c += a b for the small products inside the CPU recurrences (the sLSTM's h R each time step, the
// mLSTM's per-chunk tiles): a few rows times a head's weights, or 64 x 64 tiles, too small for a
// BLAS call each to pay off, and a plain loop nest keeps re-reading c from L1. Here blocks of 4
// rows x 2 vectors of c stay in registers over all of K (GCC / clang vector extensions: AVX-512 or
// AVX2 where the build enables it, SSE otherwise).
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "cpu/simd.h"

namespace xlstm {
namespace small_gemm_blocks {

using simd::kLanes;
using simd::load;
using simd::store;
using simd::Vector;
constexpr int kRowBlock = 4;

// Element (r, k) of the left operand: a[r, k], or a[k, r] when it is given transposed.
template <bool kTransposedA, typename T>
inline T a_at(const T* a, int64_t lda, int64_t r, int64_t k) {
  return kTransposedA ? a[k * lda + r] : a[r * lda + k];
}

// c[r, j] (+)= Σ_k a(r, k) b[k, j] for kRows rows and kVectors vectors of columns.
template <typename T, bool kTransposedA, bool kAccumulate, int kRows, int kVectors>
inline void block(const T* a, int64_t lda, const T* b, int64_t ldb, T* c, int64_t ldc, int64_t K) {
  Vector<T> acc[kRows][kVectors];
  for (int r = 0; r < kRows; ++r)
    for (int v = 0; v < kVectors; ++v) acc[r][v] = kAccumulate ? load(c + r * ldc + v * kLanes<T>) : Vector<T>{};
  for (int64_t k = 0; k < K; ++k) {
    Vector<T> bk[kVectors];
    for (int v = 0; v < kVectors; ++v) bk[v] = load(b + k * ldb + v * kLanes<T>);
    for (int r = 0; r < kRows; ++r) {
      const T ark = a_at<kTransposedA>(a, lda, r, k);
      for (int v = 0; v < kVectors; ++v) acc[r][v] += ark * bk[v];
    }
  }
  for (int r = 0; r < kRows; ++r)
    for (int v = 0; v < kVectors; ++v) store(c + r * ldc + v * kLanes<T>, acc[r][v]);
}

// One block of kRows rows across all N columns: two vectors at a time, then one, then scalars.
template <typename T, bool kTransposedA, bool kAccumulate, int kRows>
inline void row_block(const T* a, int64_t lda, const T* b, int64_t ldb, T* c, int64_t ldc, int64_t K, int64_t N) {
  constexpr int64_t W = kLanes<T>;
  int64_t j = 0;
  for (; j + 2 * W <= N; j += 2 * W) block<T, kTransposedA, kAccumulate, kRows, 2>(a, lda, b + j, ldb, c + j, ldc, K);
  for (; j + W <= N; j += W) block<T, kTransposedA, kAccumulate, kRows, 1>(a, lda, b + j, ldb, c + j, ldc, K);
  for (; j < N; ++j)
    for (int r = 0; r < kRows; ++r) {
      T s = kAccumulate ? c[r * ldc + j] : T(0);
      for (int64_t k = 0; k < K; ++k) s += a_at<kTransposedA>(a, lda, r, k) * b[k * ldb + j];
      c[r * ldc + j] = s;
    }
}

// Which part of a product causal (chunk) tiles need, so that known zeros cost nothing.
enum class Triangle {
  kFull,
  kLowerResult,  // only c[r, j] for j <= r (up to a vector's width beyond): the caller masks the rest
  kLowerA,       // a(r, k) = 0 for k > r
  kUpperA,       // a(r, k) = 0 for k < r
};

template <typename T, bool kTransposedA, bool kAccumulate, Triangle kTriangle>
void product(int64_t rows, int64_t N, int64_t K, const T* a, int64_t lda, const T* b, int64_t ldb, T* c, int64_t ldc) {
  const int64_t row_step = kTransposedA ? 1 : lda, k_step = kTransposedA ? lda : 1;  // steps in a
  // Rows r .. r + kRows - 1, over the columns and the k range the triangle leaves.
  const auto rows_from = [&](auto block_rows, int64_t r) {
    constexpr int kRows = decltype(block_rows)::value;
    int64_t k0 = 0, k1 = K, n1 = N;
    if constexpr (kTriangle == Triangle::kLowerResult)
      n1 = std::min(N, (r + kRows + kLanes<T> - 1) / kLanes<T> * kLanes<T>);
    if constexpr (kTriangle == Triangle::kLowerA) k1 = std::min(K, r + kRows);
    if constexpr (kTriangle == Triangle::kUpperA) k0 = std::min(K, r);
    row_block<T, kTransposedA, kAccumulate, kRows>(a + r * row_step + k0 * k_step, lda, b + k0 * ldb, ldb,
                                                   c + r * ldc, ldc, k1 - k0, n1);
  };
  int64_t r = 0;
  for (; r + kRowBlock <= rows; r += kRowBlock) rows_from(std::integral_constant<int, kRowBlock>(), r);
  switch (rows - r) {
    case 3: rows_from(std::integral_constant<int, 3>(), r); break;
    case 2: rows_from(std::integral_constant<int, 2>(), r); break;
    case 1: rows_from(std::integral_constant<int, 1>(), r); break;
    default: break;
  }
}

}  // namespace small_gemm_blocks

using small_gemm_blocks::Triangle;

// c (rows x N, row stride ldc) += a (rows x K, row stride lda) b (K x N, row stride ldb); with
// kTransposedA, a is given as its transpose (K x rows, row stride lda): c += aᵀ b.
template <typename T, bool kTransposedA = false, Triangle kTriangle = Triangle::kFull>
void small_gemm_accumulate(int64_t rows, int64_t N, int64_t K, const T* a, int64_t lda, const T* b, int64_t ldb, T* c,
                           int64_t ldc) {
  small_gemm_blocks::product<T, kTransposedA, true, kTriangle>(rows, N, K, a, lda, b, ldb, c, ldc);
}

// c = a b (or aᵀ b), the same shapes: c is only written.
template <typename T, bool kTransposedA = false, Triangle kTriangle = Triangle::kFull>
void small_gemm(int64_t rows, int64_t N, int64_t K, const T* a, int64_t lda, const T* b, int64_t ldb, T* c,
                int64_t ldc) {
  small_gemm_blocks::product<T, kTransposedA, false, kTriangle>(rows, N, K, a, lda, b, ldb, c, ldc);
}

// dst (cols x rows, dense) = srcᵀ for src (rows x cols, row stride ld): makes a right operand of
// small_gemm_accumulate out of a matrix that products read transposed.
template <typename T>
void transpose_into(const T* src, int64_t rows, int64_t cols, int64_t ld, T* dst) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[c * rows + r] = src[r * ld + c];
}

}  // namespace xlstm
