// c += a b for the small products inside the CPU recurrences (the sLSTM's h R each time step, the
// mLSTM's per-chunk tiles): a few rows times a head's weights, or 64 x 64 tiles, too small for a
// BLAS call each to pay off, and a plain loop nest keeps re-reading c from L1. Here blocks of 4
// rows x 2 vectors of c stay in registers over all of K (GCC / clang vector extensions: AVX-512 or
// AVX2 where the build enables it, SSE otherwise).
#pragma once

#include <algorithm>
#include <cstdint>

namespace xlstm {
namespace small_gemm_blocks {

#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;
#elif defined(__AVX__)
constexpr int kVectorBytes = 32;
#else
constexpr int kVectorBytes = 16;
#endif

typedef float FloatVector __attribute__((vector_size(kVectorBytes)));
typedef double DoubleVector __attribute__((vector_size(kVectorBytes)));

template <typename T>
struct VectorOf;
template <>
struct VectorOf<float> {
  using type = FloatVector;
};
template <>
struct VectorOf<double> {
  using type = DoubleVector;
};

template <typename T>
using Vector = typename VectorOf<T>::type;
template <typename T>
constexpr int kLanes = kVectorBytes / sizeof(T);
constexpr int kRowBlock = 4;

template <typename T>
inline Vector<T> load(const T* p) {
  Vector<T> v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

template <typename T>
inline void store(T* p, const Vector<T>& v) {
  __builtin_memcpy(p, &v, sizeof v);
}

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

template <typename T, bool kTransposedA, bool kAccumulate>
void product(int64_t rows, int64_t N, int64_t K, const T* a, int64_t lda, const T* b, int64_t ldb, T* c, int64_t ldc) {
  const int64_t row_step = kTransposedA ? 1 : lda;  // from one row of the product to the next, in a
  int64_t r = 0;
  for (; r + kRowBlock <= rows; r += kRowBlock)
    row_block<T, kTransposedA, kAccumulate, kRowBlock>(a + r * row_step, lda, b, ldb, c + r * ldc, ldc, K, N);
  switch (rows - r) {
    case 3: row_block<T, kTransposedA, kAccumulate, 3>(a + r * row_step, lda, b, ldb, c + r * ldc, ldc, K, N); break;
    case 2: row_block<T, kTransposedA, kAccumulate, 2>(a + r * row_step, lda, b, ldb, c + r * ldc, ldc, K, N); break;
    case 1: row_block<T, kTransposedA, kAccumulate, 1>(a + r * row_step, lda, b, ldb, c + r * ldc, ldc, K, N); break;
    default: break;
  }
}

}  // namespace small_gemm_blocks

// c (rows x N, row stride ldc) += a (rows x K, row stride lda) b (K x N, row stride ldb); with
// kTransposedA, a is given as its transpose (K x rows, row stride lda): c += aᵀ b.
template <typename T, bool kTransposedA = false>
void small_gemm_accumulate(int64_t rows, int64_t N, int64_t K, const T* a, int64_t lda, const T* b, int64_t ldb, T* c,
                           int64_t ldc) {
  small_gemm_blocks::product<T, kTransposedA, true>(rows, N, K, a, lda, b, ldb, c, ldc);
}

// c = a b (or aᵀ b), the same shapes: c is only written.
template <typename T, bool kTransposedA = false>
void small_gemm(int64_t rows, int64_t N, int64_t K, const T* a, int64_t lda, const T* b, int64_t ldb, T* c,
                int64_t ldc) {
  small_gemm_blocks::product<T, kTransposedA, false>(rows, N, K, a, lda, b, ldb, c, ldc);
}

// dst (cols x rows, dense) = srcᵀ for src (rows x cols, row stride ld): makes a right operand of
// small_gemm_accumulate out of a matrix that products read transposed.
template <typename T>
void transpose_into(const T* src, int64_t rows, int64_t cols, int64_t ld, T* dst) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[c * rows + r] = src[r * ld + c];
}

}  // namespace xlstm
