// What every text harness shares: a finding aborts (so the driver or libFuzzer keeps the input), and
// no exception may escape the code under test.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

namespace eellm::fuzz {

[[noreturn]] inline void crash(const char* harness, const std::string& why) {
  std::fprintf(stderr, "%s: %s\n", harness, why.c_str());
  std::abort();
}

// Runs run(text of the input); an escaping exception is a finding.
template <class Run>
int run_guarded(const char* harness, const uint8_t* data, size_t size, Run run) {
  try {
    run(std::string(reinterpret_cast<const char*>(data), size));
  } catch (const std::exception& e) {
    crash(harness, std::string("exception escaped: ") + e.what());
  } catch (...) {
    crash(harness, "unknown exception escaped");
  }
  return 0;
}

}  // namespace eellm::fuzz
