#include "exec/generate/confidence.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "model/parse.h"

namespace eellm::exec {

double confidence_score(Confidence rule, const float* logits, int V) {
  // One pass of exponentials (evaluated at every exit of every decode step): the largest term is
  // exp(0) = 1, so max_prob = 1 / sum and margin = (1 − e₂) / sum with e₂ the second largest.
  double mx = -std::numeric_limits<double>::infinity();
  for (int j = 0; j < V; ++j) mx = std::max(mx, static_cast<double>(logits[j]));
  if (rule == Confidence::kEntropy) {
    // H = log S − Σ e_j (x_j − mx) / S with e_j = exp(x_j − mx), S = Σ e_j.
    double sum = 0.0, dot = 0.0;
    for (int j = 0; j < V; ++j) {
      const double d = logits[j] - mx, e = std::exp(d);
      sum += e, dot += e * d;
    }
    const double h = std::log(sum) - dot / sum;
    return V > 1 ? std::clamp(1.0 - h / std::log(static_cast<double>(V)), 0.0, 1.0) : 1.0;
  }
  double sum = 0.0, e1 = 0.0, e2 = 0.0;
  for (int j = 0; j < V; ++j) {
    const double e = std::exp(logits[j] - mx);
    sum += e;
    if (e > e1)
      e2 = e1, e1 = e;
    else if (e > e2)
      e2 = e;
  }
  return rule == Confidence::kMaxProb ? e1 / sum : (e1 - e2) / sum;
}

StatusOr<double> parse_threshold(const std::string& text) {
  if (text == "off") return 1.0;
  double v = 0;
  if (!parse_number(text, v))
    return Status::invalid_argument("threshold '" + text + "' is not a number in [0, 1] or \"off\"");
  if (v < 0.0 || v > 1.0)
    return Status::invalid_argument("threshold (" + text + ") must lie in [0, 1] (1 or \"off\" = full model)");
  return v;
}

Status check_sampling(const SamplingOptions& s) {
  if (!(s.temperature >= 0.0f) || !std::isfinite(s.temperature))
    return Status::invalid_argument("temperature (" + std::to_string(s.temperature) + ") must be ≥ 0");
  if (s.top_k < 0) return Status::invalid_argument("top_k (" + std::to_string(s.top_k) + ") must be ≥ 0");
  if (!(s.top_p > 0.0f && s.top_p <= 1.0f))
    return Status::invalid_argument("top_p (" + std::to_string(s.top_p) + ") must lie in (0, 1]");
  return Status::ok();
}

int32_t argmax_token(const float* logits, int V) {
  int32_t best = 0;
  for (int j = 1; j < V; ++j)
    if (logits[j] > logits[best]) best = j;
  return best;
}

namespace {

// Temperature, top-k and top-p applied to the logits: the kept tokens, largest first (index order
// on ties, so a draw depends only on the logits and the RNG), with unnormalised weights p and
// their sum. The one filter behind pick_token and sampling_distribution, so both agree exactly.
struct Filtered {
  std::vector<int32_t> idx;
  std::vector<double> p;
  double sum = 0.0;
};

Filtered filter_logits(const float* logits, int V, const SamplingOptions& s) {
  Filtered f;
  f.idx.resize(static_cast<size_t>(V));
  std::iota(f.idx.begin(), f.idx.end(), 0);
  std::stable_sort(f.idx.begin(), f.idx.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  size_t keep = f.idx.size();
  if (s.top_k > 0) keep = std::min(keep, static_cast<size_t>(s.top_k));
  const double mx = logits[f.idx[0]];
  f.p.resize(keep);
  for (size_t i = 0; i < keep; ++i) f.sum += f.p[i] = std::exp((logits[f.idx[i]] - mx) / s.temperature);
  if (s.top_p < 1.0f) {
    double acc = 0.0;
    size_t n = 0;
    while (n < keep) {
      acc += f.p[n++] / f.sum;
      if (acc >= s.top_p) break;
    }
    f.p.resize(n);
    f.sum = std::accumulate(f.p.begin(), f.p.end(), 0.0);
  }
  return f;
}

}  // namespace

int32_t pick_token(const float* logits, int V, const SamplingOptions& s, std::mt19937_64& rng) {
  if (s.temperature <= 0.0f) return argmax_token(logits, V);
  const Filtered f = filter_logits(logits, V, s);
  // Uniform in [0, 1) from the top 53 bits: the same draw on every standard library.
  const double u = static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0) * f.sum;
  double acc = 0.0;
  for (size_t i = 0; i < f.p.size(); ++i) {
    acc += f.p[i];
    if (u < acc) return f.idx[i];
  }
  return f.idx[f.p.size() - 1];
}

std::vector<double> sampling_distribution(const float* logits, int V, const SamplingOptions& s) {
  std::vector<double> out(static_cast<size_t>(V), 0.0);
  if (s.temperature <= 0.0f) {
    out[static_cast<size_t>(argmax_token(logits, V))] = 1.0;
    return out;
  }
  const Filtered f = filter_logits(logits, V, s);
  for (size_t i = 0; i < f.p.size(); ++i) out[static_cast<size_t>(f.idx[i])] = f.p[i] / f.sum;
  return out;
}

double uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);
}

int32_t sample_index(const std::vector<double>& p, std::mt19937_64& rng) {
  const double sum = std::accumulate(p.begin(), p.end(), 0.0);
  const double u = uniform01(rng) * sum;
  double acc = 0.0;
  int32_t last = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] <= 0.0) continue;
    acc += p[i];
    last = static_cast<int32_t>(i);
    if (u < acc) return last;
  }
  return last;
}

}  // namespace eellm::exec
