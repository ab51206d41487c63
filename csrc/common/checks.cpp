#include "common/checks.h"

#include <sstream>

namespace xlstm {

void check_rank(const at::Tensor& t, const char* op, const char* name, int64_t rank, const char* shape) {
  TORCH_CHECK(t.defined() && t.dim() == rank, op, ": ", name, " must have shape ", shape, ", got ",
              t.defined() ? t.sizes() : at::IntArrayRef{});
}

// The expected shape as text, e.g. "[2, *, 4]": built only for an error message (an op checks
// several tensors per call, and the string would cost more than a small op's work).
static std::string shape_text(std::initializer_list<int64_t> sizes) {
  std::ostringstream text;
  text << "[";
  int64_t d = 0;
  for (int64_t s : sizes) text << (d++ ? ", " : "") << (s < 0 ? std::string("*") : std::to_string(s));
  text << "]";
  return text.str();
}

void check_tensor(const at::Tensor& t, const char* op, const char* name, std::initializer_list<int64_t> sizes,
                  at::ScalarType dtype, at::Device device, const char* like) {
  TORCH_CHECK(t.defined(), op, ": ", name, " is undefined");
  bool match = t.dim() == static_cast<int64_t>(sizes.size());
  int64_t d = 0;
  for (int64_t s : sizes) {
    if (match && s >= 0 && t.size(d) != s) match = false;
    ++d;
  }
  TORCH_CHECK(match, op, ": ", name, " must have shape ", shape_text(sizes), " (", like, "), got ", t.sizes());
  TORCH_CHECK(t.numel() > 0, op, ": ", name, " is empty (shape ", t.sizes(), ")");
  TORCH_CHECK(t.scalar_type() == dtype, op, ": ", name, " must be ", dtype, " (", like, "), got ",
              t.scalar_type());
  TORCH_CHECK(t.device() == device, op, ": ", name, " must be on ", device, " like the op's other inputs, got ",
              t.device());
}

void check_leading_input(const at::Tensor& t, const char* op, const char* name, at::DeviceType device_type,
                         bool float64_ok) {
  TORCH_CHECK(t.device().type() == device_type, op, ": ", name, " is on ", t.device(), " but another argument is on ",
              device_type, "; all tensors must be on one device");
  const at::ScalarType s = t.scalar_type();
  const bool ok = s == at::kFloat || s == at::kBFloat16 || s == at::kHalf || (float64_ok && s == at::kDouble);
  TORCH_CHECK(ok, op, ": ", name, " must be float32, bfloat16", float64_ok ? ", float16 or float64" : " or float16",
              ", got ", s);
}

at::ScalarType state_dtype(at::ScalarType input_dtype) {
  return input_dtype == at::kDouble ? at::kDouble : at::kFloat;
}

at::Tensor unit_last_stride(const at::Tensor& t) { return t.stride(-1) == 1 ? t : t.contiguous(); }

}  // namespace xlstm
