// One number parser for every text field (CLI flags, environment variables, CSV cells, YAML
// scalars): std::from_chars on the whole text, an optional leading '+', no whitespace, no trailing
// characters, finite values only. Errors name the field and the text, e.g.
// "--threads expects an integer, got '4x'". Thread-safe (pure functions).
#pragma once

#include <algorithm>
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

// True when `text` is well-formed UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF);
// `bad_at` gets the offset of the first bad byte otherwise. Strings that reach a JSON writer are
// checked with it where they are read.
inline bool valid_utf8(std::string_view text, size_t* bad_at = nullptr) {
  size_t i = 0;
  while (i < text.size()) {
    const auto b = static_cast<unsigned char>(text[i]);
    size_t n = b < 0x80 ? 0 : (b >> 5) == 0x6 ? 1 : (b >> 4) == 0xE ? 2 : (b >> 3) == 0x1E ? 3 : 9;
    bool ok = n != 9;
    uint32_t cp = n == 0 ? b : n == 1 ? (b & 0x1Fu) : n == 2 ? (b & 0x0Fu) : (b & 0x07u);
    for (size_t k = 1; ok && k <= n; ++k) {  // the continuation bytes
      if (i + k >= text.size()) {
        ok = false;
        break;
      }
      const auto c = static_cast<unsigned char>(text[i + k]);
      ok = (c & 0xC0) == 0x80;
      cp = (cp << 6) | (c & 0x3Fu);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (ok && n > 0) ok = cp >= kMin[n] && cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF);
    if (!ok) {
      if (bad_at != nullptr) *bad_at = i;
      return false;
    }
    i += n + 1;
  }
  return true;
}

// The deepest nesting of [ and { in JSON text (strings skipped), scanning no further than one level
// past max_depth: readers refuse text nested deeper than they need before parsing it (parsers and
// dump() recurse; 100,000 levels overflow the stack).
inline int json_nesting_depth(std::string_view text, int max_depth) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size() && deepest <= max_depth; ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
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
