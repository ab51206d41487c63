// Warp-wide tensor-core fragments: mma.sync m16n8k16 with bf16 or fp16 operands and float32
// accumulators, and ldmatrix (m8n8 .b16, x1 / x2 / x4, optionally .trans) to load them from shared
// memory. On the GPU each function is one PTX instruction; under XLSTM_SIM the same function
// exchanges every lane's registers through a warp collective (sim/cuda_sim.h, warp_all_gather) and
// computes what the PTX ISA documents for each lane, so that a kernel that puts an element in the
// wrong lane or register computes a wrong result in the emulation too.
//
// Register layouts, from the PTX ISA (9.7.14.5.8 "Matrix Fragments for mma.m16n8k16 with floating
// point type"; 9.7.14.5.15 "Warp-level matrix load instruction: ldmatrix"), with
// g = lane / 4 (groupID) and t = lane % 4 (threadID_in_group):
//   A (16 x 16, row-major), 4 registers of 2 elements: a[r] holds A[g + 8 (r % 2)][2t + 8 (r / 2) + {0, 1}]
//   B (16 x 8, "col": k adjacent), 2 registers:      b[r] holds B[2t + 8 r + {0, 1}][g]
//   C, D (16 x 8, float32), 4 elements:              c[r] is C[g + 8 (r / 2)][2t + r % 2]
//   ldmatrix: lanes 8i .. 8i + 7 give the row addresses (16 bytes each) of matrix i; lane l
//   receives in register i elements (l / 4, 2 (l % 4) + {0, 1}) of matrix i, or with .trans
//   elements (2 (l % 4) + {0, 1}, l / 4).
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>

#include "common/cuda_compat.h"

namespace xlstm {

// The 16-bit operand types mma.sync takes, by their C++ storage type.
template <typename T>
struct MmaOperand;
template <>
struct MmaOperand<c10::BFloat16> {
  static constexpr bool kBf16 = true;
};
template <>
struct MmaOperand<c10::Half> {
  static constexpr bool kBf16 = false;
};

// Element coordinates of the C / D fragment (see above): row and column of c[r] in lane `lane`.
XLSTM_HOST_DEVICE int mma_c_row(int lane, int r) { return lane / 4 + 8 * (r / 2); }
XLSTM_HOST_DEVICE int mma_c_col(int lane, int r) { return 2 * (lane % 4) + r % 2; }

// The bit pattern of x rounded to the operand type (round to nearest even).
template <typename T>
XLSTM_HOST_DEVICE uint16_t mma_operand_bits(float x) {
  return T(x).x;
}

// x as a high and a low part, x ≈ hi + lo, each rounded to the operand type: two products with
// them carry x at about twice the operand precision.
template <typename T>
XLSTM_HOST_DEVICE void mma_operand_split(float x, uint16_t& hi, uint16_t& lo) {
  const T high(x);
  hi = high.x;
  lo = T(x - static_cast<float>(high)).x;
}

#if defined(XLSTM_SIM)

namespace mma_sim {

inline float operand_value(uint16_t bits, bool bf16) {
  return bf16 ? static_cast<float>(c10::BFloat16(bits, c10::BFloat16::from_bits()))
              : static_cast<float>(c10::Half(bits, c10::Half::from_bits()));
}

inline uint16_t half_of(uint32_t reg, int k) { return static_cast<uint16_t>(reg >> (16 * (k % 2))); }

}  // namespace mma_sim

// c += a b for one m16n8k16 tile, every lane holding its fragments as documented above.
template <typename T>
inline void mma_m16n8k16(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  struct Operands {
    uint32_t a[4], b[2];
  };
  const Operands mine{{a[0], a[1], a[2], a[3]}, {b[0], b[1]}};
  Operands lanes[32];
  xlstm_sim::warp_all_gather(0xffffffffu, &mine, sizeof(mine), lanes);
  const int lane = xlstm_sim::lane_id();
  const bool bf16 = MmaOperand<T>::kBf16;
  for (int r = 0; r < 4; ++r) {
    const int row = mma_c_row(lane, r), col = mma_c_col(lane, r);
    double sum = 0.0;
    for (int k = 0; k < 16; ++k) {
      // A[row][k] lives in lane (row % 8) * 4 + (k % 8) / 2, register row / 8 + 2 (k / 8);
      // B[k][col] in lane col * 4 + (k % 8) / 2, register k / 8.
      const uint32_t ra = lanes[(row % 8) * 4 + (k % 8) / 2].a[row / 8 + 2 * (k / 8)];
      const uint32_t rb = lanes[col * 4 + (k % 8) / 2].b[k / 8];
      sum += static_cast<double>(mma_sim::operand_value(mma_sim::half_of(ra, k), bf16)) *
             mma_sim::operand_value(mma_sim::half_of(rb, k), bf16);
    }
    c[r] = static_cast<float>(sum + c[r]);
  }
}

// Loads kMatrices 8x8 matrices of 16-bit elements from shared memory (row addresses as above).
template <int kMatrices, bool kTranspose>
inline void ldmatrix(uint32_t (&r)[kMatrices], const void* row_address) {
  static_assert(kMatrices == 1 || kMatrices == 2 || kMatrices == 4, "ldmatrix loads 1, 2 or 4 matrices");
  const void* rows[32];
  xlstm_sim::warp_all_gather(0xffffffffu, &row_address, sizeof(row_address), rows);
  for (int l = 0; l < 8 * kMatrices; ++l)
    if (reinterpret_cast<uintptr_t>(rows[l]) % 16 != 0)
      throw std::runtime_error("xlstm_cuda emulation: ldmatrix row address not 16-byte aligned");
  const int lane = xlstm_sim::lane_id();
  const auto element = [&](int matrix, int row, int col) {
    uint16_t bits;
    std::memcpy(&bits, static_cast<const unsigned char*>(rows[8 * matrix + row]) + 2 * col, sizeof(bits));
    return static_cast<uint32_t>(bits);
  };
  for (int i = 0; i < kMatrices; ++i) {
    const int outer = lane / 4, inner = 2 * (lane % 4);
    r[i] = kTranspose ? element(i, inner, outer) | element(i, inner + 1, outer) << 16
                      : element(i, outer, inner) | element(i, outer, inner + 1) << 16;
  }
}

#else

template <typename T>
__device__ __forceinline__ void mma_m16n8k16(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  if constexpr (MmaOperand<T>::kBf16) {
    asm(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else {
    asm(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
}

template <int kMatrices, bool kTranspose>
__device__ __forceinline__ void ldmatrix(uint32_t (&r)[kMatrices], const void* row_address) {
  static_assert(kMatrices == 1 || kMatrices == 2 || kMatrices == 4, "ldmatrix loads 1, 2 or 4 matrices");
  const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(row_address));
  if constexpr (kMatrices == 1 && !kTranspose) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(address)
                 : "memory");
  } else if constexpr (kMatrices == 1) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(address)
                 : "memory");
  } else if constexpr (kMatrices == 2 && !kTranspose) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(address)
                 : "memory");
  } else if constexpr (kMatrices == 2) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(address)
                 : "memory");
  } else if constexpr (!kTranspose) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(address)
                 : "memory");
  } else {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(address)
                 : "memory");
  }
}

#endif

}  // namespace xlstm
