// Typed YAML reading with collected, located errors; edit-distance suggestions; enum aliases.
#include "model/yaml_reader.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include "model/parse.h"

namespace eellm {

int edit_distance(const std::string& a, const std::string& b) {
  std::vector<int> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = static_cast<int>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = static_cast<int>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      const int sub = prev[j - 1] + (std::tolower(a[i - 1]) == std::tolower(b[j - 1]) ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  if (word.size() > 128) return "";  // no typo of a name; and the distance is quadratic in it
  std::string best;
  int best_d = std::numeric_limits<int>::max();
  for (const std::string& c : candidates) {
    const int d = edit_distance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  // A typo changes a few characters; beyond a third of the word it is a different word.
  const int limit = std::max(2, static_cast<int>(word.size()) / 3);
  return best_d <= limit ? best : std::string();
}

void YamlContext::error(const YAML::Node& node, const std::string& path, const std::string& message) {
  if (full()) {
    ++suppressed;
    return;
  }
  const YAML::Mark m = node.Mark();
  std::string msg = source;
  if (m.line >= 0) {
    // Appended piecewise: GCC 12 reports a false -Wrestrict on chained std::string + at -O3.
    msg.append(":").append(std::to_string(m.line + 1)).append(":").append(std::to_string(m.column + 1));
  }
  msg.append(": ");
  if (!path.empty()) msg.append(path).append(": ");
  msg.append(message);
  errors.push_back(std::move(msg));
}

void YamlContext::error(const std::string& path, const std::string& message) {
  if (full()) {
    ++suppressed;
    return;
  }
  std::string msg = source;
  msg.append(": ");
  if (!path.empty()) msg.append(path).append(": ");
  msg.append(message);
  errors.push_back(std::move(msg));
}

Status YamlContext::status() const {
  if (errors.empty()) return Status::ok();
  std::string msg;
  for (const std::string& e : errors) {
    if (!msg.empty()) msg += "\n";
    msg += e;
  }
  if (suppressed > 0) msg += "\n" + source + ": ... and " + std::to_string(suppressed) + " more error(s)";
  return Status::invalid_argument(msg);
}

namespace {

const char* node_kind(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Null:
      return "nothing (null)";
    default:
      return "a scalar";
  }
}

// True when `n` is a scalar; otherwise reports what was expected.
bool expect_scalar(YamlContext& ctx, const YAML::Node& n, const std::string& path, const char* expected) {
  if (n.IsScalar()) return true;
  ctx.error(n, path, std::string("expected ") + expected + ", got " + node_kind(n));
  return false;
}

template <typename T>
void read_list(YamlContext& ctx, const YAML::Node& n, const std::string& path, std::vector<T>& out) {
  out.clear();
  if (n.IsNull()) return;
  if (n.IsScalar()) {  // `exit_layer_nums: 7` is a list of one
    T v{};
    read_value(ctx, n, path, v);
    out.push_back(v);
    return;
  }
  if (!n.IsSequence()) {
    ctx.error(n, path, std::string("expected a list, got ") + node_kind(n));
    return;
  }
  for (size_t i = 0; i < n.size(); ++i) {
    T v{};
    read_value(ctx, n[i], path + "[" + std::to_string(i) + "]", v);
    out.push_back(v);
  }
}

}  // namespace

void read_value(YamlContext& ctx, const YAML::Node& n, const std::string& path, std::string& out) {
  if (n.IsNull()) {
    out.clear();
    return;
  }
  if (!expect_scalar(ctx, n, path, "a string")) return;
  size_t bad = 0;
  if (!valid_utf8(n.Scalar(), &bad)) {
    ctx.error(n, path, "not valid UTF-8 (byte " + std::to_string(bad) + " of the text)");
    return;
  }
  out = n.Scalar();
}

void read_value(YamlContext& ctx, const YAML::Node& n, const std::string& path, bool& out) {
  if (!expect_scalar(ctx, n, path, "a boolean (true/false)")) return;
  std::string t = n.Scalar();
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  if (t == "true" || t == "yes" || t == "on") {
    out = true;
  } else if (t == "false" || t == "no" || t == "off") {
    out = false;
  } else {
    ctx.error(n, path, "expected a boolean (true/false), got '" + n.Scalar() + "'");
  }
}

void read_value(YamlContext& ctx, const YAML::Node& n, const std::string& path, int& out) {
  if (!expect_scalar(ctx, n, path, "an integer")) return;
  int64_t v = 0;
  if (!parse_number(n.Scalar(), v)) {
    ctx.error(n, path, "expected an integer, got '" + n.Scalar() + "'");
  } else if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) {
    ctx.error(n, path, "integer " + n.Scalar() + " is out of range");
  } else {
    out = static_cast<int>(v);
  }
}

void read_value(YamlContext& ctx, const YAML::Node& n, const std::string& path, uint64_t& out) {
  if (!expect_scalar(ctx, n, path, "a non-negative integer")) return;
  if (!parse_number(n.Scalar(), out)) ctx.error(n, path, "expected a non-negative integer, got '" + n.Scalar() + "'");
}

void read_value(YamlContext& ctx, const YAML::Node& n, const std::string& path, double& out) {
  if (!expect_scalar(ctx, n, path, "a number")) return;
  double v = 0;
  if (!parse_number(n.Scalar(), v)) {
    ctx.error(n, path, "expected a number, got '" + n.Scalar() + "'");
  } else {
    out = v;
  }
}

void read_value(YamlContext& ctx, const YAML::Node& n, const std::string& path, std::vector<int>& out) {
  read_list(ctx, n, path, out);
}

void read_value(YamlContext& ctx, const YAML::Node& n, const std::string& path, std::vector<double>& out) {
  read_list(ctx, n, path, out);
}

MapReader::MapReader(YamlContext& ctx, const YAML::Node& node, std::string path)
    : ctx_(&ctx), node_(node), path_(std::move(path)) {
  if (!node_ || node_.IsNull()) {
    valid_ = false;  // an empty section: nothing to read, nothing unknown
  } else if (!node_.IsMap()) {
    ctx.error(node_, path_, std::string("expected a mapping of keys, got ") + node_kind(node_));
  } else {
    valid_ = true;
  }
}

YAML::Node MapReader::take(const char* key) {
  known_.emplace_back(key);
  if (!valid_) return YAML::Node(YAML::NodeType::Undefined);
  const YAML::Node& node = node_;  // const operator[] never inserts
  return node[key];
}

void MapReader::finish() {
  if (!valid_) return;
  std::unordered_map<std::string, int> seen;  // key → line: yaml-cpp keeps duplicates silently
  const std::unordered_set<std::string> known(known_.begin(), known_.end());
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    const std::string key = it->first.IsScalar() ? it->first.Scalar() : std::string("<non-scalar key>");
    const int line = it->first.Mark().line + 1;
    const auto [dup, fresh] = seen.emplace(key, line);
    if (!fresh || known.count(key) == 0) {
      if (ctx_->full()) {  // past the error cap: count it, skip the "did you mean" search
        ++ctx_->suppressed;
        continue;
      }
    }
    if (!fresh) {
      ctx_->error(it->first, child_path(key),
                  "duplicate key '" + key + "' (first given on line " + std::to_string(dup->second) + ")");
      continue;
    }
    if (known.count(key) > 0) continue;
    std::string msg = "unknown key '" + key + "'";
    const std::string hint = closest_match(key, known_);
    if (!hint.empty()) {
      msg += "; did you mean '" + hint + "'?";
    } else {
      std::string all;
      for (const std::string& k : known_) all += (all.empty() ? "" : ", ") + k;
      msg += " (known keys: " + all + ")";
    }
    ctx_->error(it->first, child_path(key), msg);
  }
}

std::string normalize_enum_text(const std::string& text) {
  std::string s;
  for (unsigned char c : text)
    if (c != '-' && c != '_' && c != ' ') s += static_cast<char>(std::tolower(c));
  return s;
}

bool parse_enum_alias(const std::string& t, Normalization& out) {
  if (t == "ln" || t == "layer") return (out = Normalization::kLayerNorm), true;
  if (t == "rms") return (out = Normalization::kRMSNorm), true;
  return false;
}
bool parse_enum_alias(const std::string& t, PositionEmbedding& out) {
  if (t == "learned" || t == "absolute" || t == "learnedabs") return (out = PositionEmbedding::kLearnedAbsolute), true;
  if (t == "rotary") return (out = PositionEmbedding::kRope), true;
  return false;
}
bool parse_enum_alias(const std::string& t, Activation& out) {
  if (t == "gelutanh") return (out = Activation::kGelu), true;
  return false;
}
bool parse_enum_alias(const std::string& t, DType& out) {
  if (t == "float32" || t == "float" || t == "f32") return (out = DType::kFP32), true;
  if (t == "float16" || t == "half" || t == "f16") return (out = DType::kFP16), true;
  if (t == "bfloat16" || t == "bf") return (out = DType::kBF16), true;
  return false;
}
bool parse_enum_alias(const std::string& t, ScheduleKind& out) {
  if (t == "nopipelining" || t == "nopipeline") return (out = ScheduleKind::kNoPipelining), true;
  if (t == "pipedreamflush" || t == "onefoneb") return (out = ScheduleKind::k1F1B), true;
  if (t == "interleaved1f1b" || t == "virtual") return (out = ScheduleKind::kInterleaved1F1B), true;
  if (t == "zerobubble" || t == "zbh1") return (out = ScheduleKind::kZBH1), true;
  if (t == "ee" || t == "earlyexit") return (out = ScheduleKind::kEE1F1B), true;
  if (t == "eefillbubbles" || t == "fill") return (out = ScheduleKind::kEEFill), true;
  return false;
}
bool parse_enum_alias(const std::string& t, DeviceKind& out) {
  if (t == "gpu") return (out = DeviceKind::kCUDA), true;
  if (t == "host") return (out = DeviceKind::kCPU), true;
  return false;
}
bool parse_enum_alias(const std::string& t, InferenceMethod& out) {
  if (t == "kvrecompute" || t == "kvrecomputation" || t == "recomputation")
    return (out = InferenceMethod::kRecompute), true;
  if (t == "pipelinebased") return (out = InferenceMethod::kPipeline), true;
  if (t == "selfspeculative") return (out = InferenceMethod::kSpeculative), true;
  if (t == "none" || t == "noexit") return (out = InferenceMethod::kFull), true;
  return false;
}
bool parse_enum_alias(const std::string& t, Confidence& out) {
  if (t == "maxprobability" || t == "prob" || t == "softmax") return (out = Confidence::kMaxProb), true;
  return false;
}

}  // namespace eellm
