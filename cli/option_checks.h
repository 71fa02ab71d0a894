// Checks of the execution commands' options (train, eval, generate, data prepare, calibrate): numbers
// read by model/parse.h's one number parser and range-checked as CLI11 validators, so that a bad
// value is refused naming the option ("--steps: must be in [0, 1000000000], got -5") before any
// work starts. Destinations are checked by exec/io/safetensors.h's check_writable_dir/_file.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <sstream>
#include <string>

#include "model/parse.h"

namespace eellm::cli {

// An integer option in [lo, hi].
inline CLI::Validator int_in(int64_t lo, int64_t hi) {
  const std::string range = "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  return CLI::Validator(
      [lo, hi, range](std::string& text) -> std::string {
        int64_t v = 0;
        if (!parse_number(text, v)) return "expects an integer in " + range + ", got '" + text + "'";
        if (v < lo || v > hi) return "must be in " + range + ", got " + text;
        return "";
      },
      "INT in " + range);
}

// An option whose "not given" value (0 or -1) lies outside its range: --help shows no "=0"/"=-1" next to
// the range; the description says where the default comes from ("default: from the scenario").
inline CLI::Option* default_elsewhere(CLI::Option* option) {
  return option->default_str("");
}

// A number option in [lo, hi] (finite; an empty value is refused, not read as 0).
inline CLI::Validator number_in(double lo, double hi) {
  std::ostringstream r;
  r << "[" << lo << ", " << hi << "]";
  const std::string range = r.str();
  return CLI::Validator(
      [lo, hi, range](std::string& text) -> std::string {
        double v = 0;
        if (!parse_number(text, v)) return "expects a number in " + range + ", got '" + text + "'";
        if (v < lo || v > hi) return "must be in " + range + ", got " + text;
        return "";
      },
      "NUMBER in " + range);
}

constexpr int64_t kMaxThreads = 4096;
constexpr int64_t kMaxSteps = 1000000000;

}  // namespace eellm::cli
