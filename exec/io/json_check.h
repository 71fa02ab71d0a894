// Typed, range-checked reading of untrusted JSON (checkpoint headers, state files, manifests, serve
// request bodies): every accessor returns a Status naming the source, the field path and the fault
// instead of throwing nlohmann::json::type_error, and the nesting depth of a text is bounded before
// it is parsed (nlohmann's dump and comparison recurse). Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "model/status.h"

namespace eellm::exec {

// Deepest nesting of arrays/objects in `text` (strings skipped); stops counting once past `limit`.
int json_nesting_depth(std::string_view text, int limit);
// Parses `text` as JSON: kCorruption naming `source` when it is not JSON or nests deeper than
// `max_depth` (the depth is checked before parsing).
StatusOr<nlohmann::json> parse_json_bounded(std::string_view text, const std::string& source, int max_depth = 64);

// Field `key` of object `obj`, where `where` names the object in messages ("state.json: data").
// Missing fields, wrong types and values outside [lo, hi] are kCorruption naming `where`.`key`.
StatusOr<int64_t> json_int(const nlohmann::json& obj, const std::string& key, int64_t lo, int64_t hi,
                           const std::string& where);
StatusOr<uint64_t> json_uint(const nlohmann::json& obj, const std::string& key, const std::string& where);
StatusOr<std::string> json_string(const nlohmann::json& obj, const std::string& key, const std::string& where);
StatusOr<bool> json_bool(const nlohmann::json& obj, const std::string& key, const std::string& where);
// The object/array at `key` (a pointer into obj).
StatusOr<const nlohmann::json*> json_object(const nlohmann::json& obj, const std::string& key,
                                            const std::string& where);
StatusOr<const nlohmann::json*> json_array(const nlohmann::json& obj, const std::string& key, const std::string& where);
// A tensor shape: an array of at most 8 integers in [0, 2^40], whose product (checked for overflow)
// is at most 2^40 elements.
StatusOr<std::vector<int64_t>> json_shape(const nlohmann::json& value, const std::string& where);
// Product of a checked shape's dimensions (json_shape bounds it).
int64_t shape_elements(const std::vector<int64_t>& shape);

}  // namespace eellm::exec
