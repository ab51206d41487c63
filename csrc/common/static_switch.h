// Run-time values turned into template arguments, so that launch code states each kernel variant
// once (after Mamba's static_switch.h).
#pragma once

#include <stdexcept>
#include <type_traits>

namespace xlstm {

// body(std::integral_constant<Enum, v>{}) for the one v of kValues that equals value:
//   enum_switch<Place::kA, Place::kB>(place, [&](auto p) { run<decltype(p)::value>(); });
template <auto... kValues, typename Enum, typename Body>
void enum_switch(Enum value, Body&& body) {
  static_assert((std::is_same_v<decltype(kValues), Enum> && ...), "the cases must be values of the switched enum");
  const bool matched = ((value == kValues ? (body(std::integral_constant<Enum, kValues>{}), true) : false) || ...);
  if (!matched) throw std::logic_error("enum_switch: a value without a case");
}

}  // namespace xlstm
