// The CPU kernels' vector type at the build's ISA (GCC / clang vector extensions: 512 bits with
// AVX-512, 256 with AVX, else 128) and unaligned loads and stores of it.
#pragma once

namespace xlstm {
namespace simd {

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

}  // namespace simd
}  // namespace xlstm
