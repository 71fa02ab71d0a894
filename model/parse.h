// One number parser for every text field (CLI flags, environment variables, CSV cells, YAML
// scalars): std::from_chars on the whole text, an optional leading '+', no whitespace, no trailing
// characters, finite values only. Errors name the field and the text, e.g.
// "--threads expects an integer, got '4x'". Thread-safe (pure functions).
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

#include "model/status.h"

namespace eellm {

// True when all of `text` is one number of type T (optionally '+'-signed; finite for floats).
template <typename T>
bool parse_number(std::string_view text, T& out) {
  if (!text.empty() && text[0] == '+') text.remove_prefix(1);
  if (text.empty() || text[0] == '+') return false;
  const char* end = text.data() + text.size();
  T v{};
  auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (ec != std::errc() || ptr != end) return false;
  if constexpr (std::is_floating_point_v<T>) {
    if (!std::isfinite(v)) return false;
  }
  out = v;
  return true;
}

// The number in `text`, or an invalid-argument Status "FIELD expects WHAT, got 'TEXT'".
template <typename T>
StatusOr<T> parse_number(const std::string& field, std::string_view text) {
  T v{};
  if (parse_number(text, v)) return v;
  const char* what = std::is_floating_point_v<T> ? "a number"
                     : std::is_unsigned_v<T>     ? "a non-negative integer"
                                                 : "an integer";
  return Status::invalid_argument(field + " expects " + what + ", got '" + std::string(text) + "'");
}

inline StatusOr<int> parse_int(const std::string& field, std::string_view text) {
  return parse_number<int>(field, text);
}
inline StatusOr<int64_t> parse_int64(const std::string& field, std::string_view text) {
  return parse_number<int64_t>(field, text);
}
inline StatusOr<uint64_t> parse_uint64(const std::string& field, std::string_view text) {
  return parse_number<uint64_t>(field, text);
}
inline StatusOr<double> parse_double(const std::string& field, std::string_view text) {
  return parse_number<double>(field, text);
}

}  // namespace eellm
