// Vector accesses to global memory: one 8- or 16-byte load or store (LDG.E.64/.128, STG.E.128)
// for N consecutive elements, where the launch code has checked that the address is aligned to
// the vector's size (see aligned_to). The emulation's UBSan faults on a misaligned one.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/cuda_compat.h"

namespace xlstm {

template <typename T, int N>
struct alignas(sizeof(T) * N) AlignedVector {
  T v[N];
};

template <int N, typename T>
__device__ __forceinline__ AlignedVector<T, N> load_vector(const T* p) {
  return *reinterpret_cast<const AlignedVector<T, N>*>(p);
}

template <int N, typename T>
__device__ __forceinline__ void store_vector(T* p, const AlignedVector<T, N>& value) {
  *reinterpret_cast<AlignedVector<T, N>*>(p) = value;
}

// N consecutive elements as floats, and back (rounded to T).
template <int N, typename T>
__device__ __forceinline__ void load_floats(float (&out)[N], const T* p) {
  const AlignedVector<T, N> value = load_vector<N>(p);
#pragma unroll
  for (int e = 0; e < N; ++e) out[e] = static_cast<float>(value.v[e]);
}

template <int N, typename T>
__device__ __forceinline__ void store_floats(T* p, const float (&in)[N]) {
  AlignedVector<T, N> value;
#pragma unroll
  for (int e = 0; e < N; ++e) value.v[e] = static_cast<T>(in[e]);
  store_vector(p, value);
}

inline bool aligned_to(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

}  // namespace xlstm
