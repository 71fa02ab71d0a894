#include "exec/io/json_check.h"

#include <algorithm>

namespace eellm::exec {
using nlohmann::json;

namespace {
constexpr int64_t kMaxElements = int64_t{1} << 40;
constexpr size_t kMaxRank = 8;

std::string at(const std::string& where, const std::string& key) {
  return where + (where.empty() ? "" : ".") + key;
}

StatusOr<const json*> field(const json& obj, const std::string& key, const std::string& where) {
  if (!obj.is_object()) return Status::corruption(where + " is " + obj.type_name() + ", expected an object");
  const auto it = obj.find(key);
  if (it == obj.end()) return Status::corruption(at(where, key) + " is missing");
  return &*it;
}
}  // namespace

int json_nesting_depth(std::string_view text, int limit) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) return deepest;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

StatusOr<json> parse_json_bounded(std::string_view text, const std::string& source, int max_depth) {
  if (json_nesting_depth(text, max_depth) > max_depth)
    return Status::corruption(source + ": JSON nested deeper than " + std::to_string(max_depth) + " levels");
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::corruption(source + " is not valid JSON");
  return j;
}

StatusOr<int64_t> json_int(const json& obj, const std::string& key, int64_t lo, int64_t hi, const std::string& where) {
  EELLM_ASSIGN_OR_RETURN(const json* v, field(obj, key, where));
  const std::string range = " in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(hi) || (lo > 0 && u < static_cast<uint64_t>(lo)))
      return Status::corruption(at(where, key) + " is " + std::to_string(u) + ", expected an integer" + range);
    return static_cast<int64_t>(u);
  }
  if (!v->is_number_integer())
    return Status::corruption(at(where, key) + " is " + v->type_name() + ", expected an integer" + range);
  const int64_t i = v->get<int64_t>();
  if (i < lo || i > hi)
    return Status::corruption(at(where, key) + " is " + std::to_string(i) + ", expected an integer" + range);
  return i;
}

StatusOr<uint64_t> json_uint(const json& obj, const std::string& key, const std::string& where) {
  EELLM_ASSIGN_OR_RETURN(const json* v, field(obj, key, where));
  if (v->is_number_unsigned()) return v->get<uint64_t>();
  if (v->is_number_integer() && v->get<int64_t>() >= 0) return static_cast<uint64_t>(v->get<int64_t>());
  return Status::corruption(at(where, key) + " is " + (v->is_number_integer() ? v->dump() : v->type_name()) +
                            ", expected a non-negative integer");
}

StatusOr<std::string> json_string(const json& obj, const std::string& key, const std::string& where) {
  EELLM_ASSIGN_OR_RETURN(const json* v, field(obj, key, where));
  if (!v->is_string()) return Status::corruption(at(where, key) + " is " + v->type_name() + ", expected a string");
  return v->get<std::string>();
}

StatusOr<bool> json_bool(const json& obj, const std::string& key, const std::string& where) {
  EELLM_ASSIGN_OR_RETURN(const json* v, field(obj, key, where));
  if (!v->is_boolean()) return Status::corruption(at(where, key) + " is " + v->type_name() + ", expected a boolean");
  return v->get<bool>();
}

StatusOr<const json*> json_object(const json& obj, const std::string& key, const std::string& where) {
  EELLM_ASSIGN_OR_RETURN(const json* v, field(obj, key, where));
  if (!v->is_object()) return Status::corruption(at(where, key) + " is " + v->type_name() + ", expected an object");
  return v;
}

StatusOr<const json*> json_array(const json& obj, const std::string& key, const std::string& where) {
  EELLM_ASSIGN_OR_RETURN(const json* v, field(obj, key, where));
  if (!v->is_array()) return Status::corruption(at(where, key) + " is " + v->type_name() + ", expected an array");
  return v;
}

StatusOr<std::vector<int64_t>> json_shape(const json& value, const std::string& where) {
  if (!value.is_array() || value.size() > kMaxRank)
    return Status::corruption(where + " is " +
                              (value.is_array() ? "an array of " + std::to_string(value.size()) : value.type_name()) +
                              ", expected a shape (an array of at most " + std::to_string(kMaxRank) + " integers)");
  std::vector<int64_t> shape;
  int64_t n = 1;
  for (const json& d : value) {
    const bool ok = d.is_number_integer() &&
                    (d.is_number_unsigned() ? d.get<uint64_t>() <= uint64_t{kMaxElements} : d.get<int64_t>() >= 0);
    if (!ok || d.get<int64_t>() > kMaxElements)
      return Status::corruption(where + " has dimension " + d.dump() + ", expected an integer in [0, 2^40]");
    shape.push_back(d.get<int64_t>());
    if (__builtin_mul_overflow(n, shape.back(), &n) || n > kMaxElements)
      return Status::corruption(where + " " + value.dump() + " has more than 2^40 elements");
  }
  return shape;
}

int64_t shape_elements(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

}  // namespace eellm::exec
