// Confidence rules (eellm::Confidence, the scenario's enum) that decide whether a token may leave the network at an
// exit head, and the token pickers (greedy, temperature, top-k, top-p) used by generation.
//
// Every rule maps one row of logits (the V real columns; padded columns are ignored) to a score in
// [0, 1]; a token exits when score ≥ threshold, so one threshold scale serves every rule and a
// threshold of 1.0 means "off" (the generator then evaluates no exit at all — exactly the full model):
//   max_prob  max softmax probability (EE-LLM's rule);
//   margin    top-1 − top-2 probability;
//   entropy   1 − H(p) / ln V (1 = one-hot, 0 = uniform).
// Thread-safety: pure functions; the RNG is the caller's.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "model/scenario.h"
#include "model/status.h"

namespace eellm::exec {

// Score in [0, 1] of one logits row (V real columns).
double confidence_score(Confidence rule, const float* logits, int V);

// Parses "off" (→ 1.0) or a number in [0, 1]; anything else is an error naming the value.
StatusOr<double> parse_threshold(const std::string& text);

struct SamplingOptions {
  float temperature = 0.0f;  // 0 → greedy (argmax)
  int top_k = 0;             // 0 → no top-k filter
  float top_p = 1.0f;        // 1 → no nucleus filter
};

Status check_sampling(const SamplingOptions& s);

// Index of the largest of the V logits (the first one on ties).
int32_t argmax_token(const float* logits, int V);
// Greedy when temperature is 0, else a draw from softmax(logits / temperature) restricted to the
// top_k largest and then to the smallest prefix whose probability reaches top_p.
int32_t pick_token(const float* logits, int V, const SamplingOptions& s, std::mt19937_64& rng);

// The distribution pick_token draws from, as V probabilities summing to 1 (zero outside the top-k /
// top-p set; one-hot at the argmax when temperature is 0). Speculative sampling compares two.
std::vector<double> sampling_distribution(const float* logits, int V, const SamplingOptions& s);
// Uniform in [0, 1) from the top 53 bits of one draw (the same value on every standard library).
double uniform01(std::mt19937_64& rng);
// A draw from the weights p (non-negative, positive sum; need not be normalised), one uniform01.
int32_t sample_index(const std::vector<double>& p, std::mt19937_64& rng);

}  // namespace eellm::exec
