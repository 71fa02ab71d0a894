// Strict, typed reading of YAML mappings into plain structs, collecting every error with its
// location ("file:line:col: field.path: message"). A MapReader is told each key it accepts (usually
// through for_each_field, see scenario_fields.h); finish() then reports every other key as unknown,
// with a "did you mean" for near-misses. Used by scenario_io.cpp for scenarios, clusters and
// devices. Not thread-safe to share one YamlContext; create one per parse.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <string>
#include <vector>

#include "model/scenario_fields.h"
#include "model/status.h"

namespace eellm {

// Levenshtein distance; used for "did you mean" hints on keys, enum values and flags.
int edit_distance(const std::string& a, const std::string& b);
// The candidate nearest to `word` when close enough to be a plausible typo, else "".
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

// Errors collected while reading one document: the first kMaxErrors are kept, the rest counted (a
// file with 100,000 unknown keys is reported in a few lines, in linear time).
struct YamlContext {
  static constexpr size_t kMaxErrors = 20;
  std::string source;  // file name (or "<string>") for messages
  std::vector<std::string> errors;
  size_t suppressed = 0;  // errors beyond kMaxErrors

  // "source:line:col: path: message" (line/col when the node carries a mark).
  void error(const YAML::Node& node, const std::string& path, const std::string& message);
  void error(const std::string& path, const std::string& message);
  bool ok() const { return errors.empty(); }
  bool full() const { return errors.size() >= kMaxErrors; }
  // All errors joined one per line, as an invalid-argument Status (ok when none).
  Status status() const;
};

// Value readers: each checks the node's type and reports "expected X, got 'v'" on mismatch.
void read_value(YamlContext& ctx, const YAML::Node& n, const std::string& path, std::string& out);
void read_value(YamlContext& ctx, const YAML::Node& n, const std::string& path, bool& out);
void read_value(YamlContext& ctx, const YAML::Node& n, const std::string& path, int& out);
void read_value(YamlContext& ctx, const YAML::Node& n, const std::string& path, uint64_t& out);
void read_value(YamlContext& ctx, const YAML::Node& n, const std::string& path, double& out);
void read_value(YamlContext& ctx, const YAML::Node& n, const std::string& path, std::vector<int>& out);
void read_value(YamlContext& ctx, const YAML::Node& n, const std::string& path, std::vector<double>& out);

// Parses an enum value by its to_string() name, case-insensitively and ignoring '-', '_' and
// spaces, plus a few aliases ("rmsnorm", "1F1B", "bfloat16", "gpu"). False when unknown.
template <typename E>
bool parse_enum(const std::string& text, E& out);
// "LayerNorm, RMSNorm" — the accepted names, for messages.
template <typename E>
std::string enum_names();
// parse_enum as a StatusOr: "FIELD: unknown value 'TEXT'; allowed: A, B, C" when unknown.
template <typename E>
StatusOr<E> parse_enum_value(const std::string& field, const std::string& text);

template <typename E>
requires std::is_enum_v<E>
void read_value(YamlContext& ctx, const YAML::Node& n, const std::string& path, E& out) {
  std::string text;
  const size_t before = ctx.errors.size();
  read_value(ctx, n, path, text);
  if (ctx.errors.size() != before) return;
  if (!parse_enum(text, out)) ctx.error(n, path, "unknown value '" + text + "'; allowed: " + enum_names<E>());
}

// Reads one mapping node. Call operator()(key, member) for every accepted key (for_each_field
// passes each member), then finish() to report unknown keys.
class MapReader {
 public:
  MapReader(YamlContext& ctx, const YAML::Node& node, std::string path);

  template <typename T>
  void operator()(const char* key, T& out) {
    known_.emplace_back(key);
    if (!valid_) return;
    const YAML::Node& node = node_;  // const operator[] never inserts
    const YAML::Node child = node[key];
    if (child) read_value(*ctx_, child, child_path(key), out);
  }
  // Accepts `key` without reading it (handled by the caller); returns the node (may be undefined).
  YAML::Node take(const char* key);
  // Reports keys that were not accepted, e.g. "unknown key model.num_layer; did you mean
  // num_layers?".
  void finish();

  bool valid() const { return valid_; }
  std::string child_path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

 private:
  YamlContext* ctx_;
  YAML::Node node_;
  std::string path_;
  bool valid_ = false;
  std::vector<std::string> known_;
};

std::string normalize_enum_text(const std::string& text);
// Aliases beyond the to_string() names, matched in normalised form (lower case, no '-', '_', ' ').
bool parse_enum_alias(const std::string& normalized, Normalization& out);
bool parse_enum_alias(const std::string& normalized, PositionEmbedding& out);
bool parse_enum_alias(const std::string& normalized, Activation& out);
bool parse_enum_alias(const std::string& normalized, DType& out);
bool parse_enum_alias(const std::string& normalized, ScheduleKind& out);
bool parse_enum_alias(const std::string& normalized, DeviceKind& out);
bool parse_enum_alias(const std::string& normalized, InferenceMethod& out);
bool parse_enum_alias(const std::string& normalized, Confidence& out);
template <typename E>
bool parse_enum_alias(const std::string&, E&) {
  return false;
}

template <typename E>
bool parse_enum(const std::string& text, E& out) {
  const std::string norm = normalize_enum_text(text);
  for (E v : enum_values<E>()) {
    if (normalize_enum_text(to_string(v)) == norm) {
      out = v;
      return true;
    }
  }
  return parse_enum_alias(norm, out);
}

template <typename E>
StatusOr<E> parse_enum_value(const std::string& field, const std::string& text) {
  E v{};
  if (parse_enum(text, v)) return v;
  return Status::invalid_argument(field + ": unknown value '" + text + "'; allowed: " + enum_names<E>());
}

template <typename E>
std::string enum_names() {
  std::string s;
  for (E v : enum_values<E>()) {
    if (!s.empty()) s += ", ";
    s += to_string(v);
  }
  return s;
}

}  // namespace eellm
