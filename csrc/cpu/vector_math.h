// CPU kernel files only, included first: declares glibc's vector variants (libmvec) of the
// transcendental functions the kernels call, so that GCC vectorizes the loops around them. glibc
// declares them itself only under -ffast-math, whose other effects we do not want. Link -lmvec.
#pragma once

#include <cmath>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
extern "C" {
__attribute__((__simd__("notinbranch"), const, nothrow)) float expf(float);
__attribute__((__simd__("notinbranch"), const, nothrow)) float log1pf(float);
__attribute__((__simd__("notinbranch"), const, nothrow)) float tanhf(float);
__attribute__((__simd__("notinbranch"), const, nothrow)) double exp(double);
__attribute__((__simd__("notinbranch"), const, nothrow)) double log1p(double);
__attribute__((__simd__("notinbranch"), const, nothrow)) double tanh(double);
}
#endif
