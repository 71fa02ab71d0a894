// A seeded mutation driver for libFuzzer-style harnesses (LLVMFuzzerTestOneInput), so that every
// harness runs in the ordinary GCC build and in ctest without clang. It reads a seed corpus, applies
// random mutations with a fixed seed (reproducible runs), and calls the harness on each input. A crash
// (signal) or a hang (--timeout) writes the offending input to --crash-dir before the process dies, so
// it can be replayed: `fuzz_NAME --replay FILE`. With clang's -fsanitize=fuzzer the same harness links
// against libFuzzer instead (docs/reliability.md).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <random>
#include <string>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

using Bytes = std::vector<uint8_t>;

// The input being run, kept where a signal handler can reach it with async-signal-safe calls only.
const uint8_t* g_input = nullptr;
size_t g_input_size = 0;
char g_crash_path[4096] = {0};

void dump_and_die(int sig) {
  if (g_crash_path[0] != 0) {
    const int fd = ::open(g_crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      size_t off = 0;
      while (off < g_input_size) {
        const ssize_t n = ::write(fd, g_input + off, g_input_size - off);
        if (n <= 0) break;
        off += static_cast<size_t>(n);
      }
      ::close(fd);
    }
    static const char msg[] = "fuzz: input that failed written to the crash directory\n";
    (void)!::write(2, msg, sizeof msg - 1);
  }
  std::signal(sig == SIGALRM ? SIGABRT : sig, SIG_DFL);
  std::raise(sig == SIGALRM ? SIGABRT : sig);
}

// Tokens that reach the corners of number parsing, nesting and YAML/JSON structure.
const std::vector<std::string>& dictionary() {
  static const std::vector<std::string> words = {"0",
                                                 "-1",
                                                 "-0",
                                                 "1e308",
                                                 "-1e308",
                                                 "5e-324",
                                                 "nan",
                                                 ".nan",
                                                 "inf",
                                                 "-.inf",
                                                 "2147483647",
                                                 "2147483648",
                                                 "4294967296",
                                                 "9223372036854775807",
                                                 "-9223372036854775808",
                                                 "18446744073709551616",
                                                 "65536",
                                                 "1073741824",
                                                 "0x7fffffff",
                                                 "1e30",
                                                 "[",
                                                 "]",
                                                 "{",
                                                 "}",
                                                 "[[[[[[[[",
                                                 "{{{{{{{{",
                                                 ":",
                                                 ",",
                                                 "\"",
                                                 "'",
                                                 "\n",
                                                 "  ",
                                                 "- ",
                                                 "&a ",
                                                 "*a",
                                                 "!!str ",
                                                 "~",
                                                 "null",
                                                 "true",
                                                 "\\",
                                                 "$((",
                                                 "))",
                                                 "${",
                                                 "}",
                                                 "--",
                                                 " ",
                                                 "\x00",
                                                 "\xff",
                                                 "\xc3\x28"};
  return words;
}

void mutate(Bytes& b, const std::vector<Bytes>& corpus, std::mt19937_64& rng, size_t max_len) {
  auto pick = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  switch (rng() % 7) {
    case 0:  // flip a bit
      if (!b.empty()) b[pick(b.size())] ^= static_cast<uint8_t>(1u << (rng() % 8));
      break;
    case 1:  // random byte
      if (!b.empty()) b[pick(b.size())] = static_cast<uint8_t>(rng());
      break;
    case 2: {  // erase a range
      if (b.empty()) break;
      const size_t at = pick(b.size());
      const size_t n = std::min(b.size() - at, 1 + pick(16));
      b.erase(b.begin() + static_cast<long>(at), b.begin() + static_cast<long>(at + n));
      break;
    }
    case 3: {  // insert a dictionary token
      const std::string& w = dictionary()[pick(dictionary().size())];
      b.insert(b.begin() + static_cast<long>(pick(b.size() + 1)), w.begin(), w.end());
      break;
    }
    case 4: {  // replace a run of digits or letters with a token
      if (b.empty()) break;
      size_t at = pick(b.size());
      size_t end = at;
      while (end < b.size() && std::isalnum(b[end]) != 0) ++end;
      const std::string& w = dictionary()[pick(dictionary().size())];
      b.erase(b.begin() + static_cast<long>(at), b.begin() + static_cast<long>(end));
      b.insert(b.begin() + static_cast<long>(at), w.begin(), w.end());
      break;
    }
    case 5: {  // duplicate a chunk (repetition, deep nesting)
      if (b.empty()) break;
      const size_t at = pick(b.size());
      const size_t n = std::min(b.size() - at, 1 + pick(64));
      const Bytes chunk(b.begin() + static_cast<long>(at), b.begin() + static_cast<long>(at + n));
      const size_t times = 1 + pick(8);
      for (size_t i = 0; i < times; ++i) b.insert(b.begin() + static_cast<long>(at), chunk.begin(), chunk.end());
      break;
    }
    default: {  // splice with another seed
      const Bytes& other = corpus[pick(corpus.size())];
      if (other.empty()) break;
      const size_t from = pick(other.size());
      const size_t at = pick(b.size() + 1);
      b.resize(at);
      b.insert(b.end(), other.begin() + static_cast<long>(from), other.end());
      break;
    }
  }
  if (b.size() > max_len) b.resize(max_len);
}

Bytes read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

int run_one(const Bytes& b, unsigned timeout_s) {
  g_input = b.data();
  g_input_size = b.size();
  if (timeout_s > 0) ::alarm(timeout_s);
  const int rc = LLVMFuzzerTestOneInput(b.data(), b.size());
  if (timeout_s > 0) ::alarm(0);
  return rc;
}

int usage() {
  std::cerr << "usage: fuzz_NAME [--corpus DIR]... [--runs N] [--seed S] [--max-len BYTES] [--timeout S]\n"
               "                 [--crash-dir DIR] | --replay FILE...\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::filesystem::path> corpus_dirs, replay;
  long runs = 1000;
  uint64_t seed = 1;
  size_t max_len = 1 << 16;
  unsigned timeout_s = 20;
  std::filesystem::path crash_dir = ".";
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--corpus" && has_value)
      corpus_dirs.emplace_back(argv[++i]);
    else if (a == "--runs" && has_value)
      runs = std::strtol(argv[++i], nullptr, 10);
    else if (a == "--seed" && has_value)
      seed = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--max-len" && has_value)
      max_len = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--timeout" && has_value)
      timeout_s = static_cast<unsigned>(std::strtoul(argv[++i], nullptr, 10));
    else if (a == "--crash-dir" && has_value)
      crash_dir = argv[++i];
    else if (a == "--replay") {
      for (++i; i < argc; ++i) replay.emplace_back(argv[i]);
    } else
      return usage();
  }
  const std::string crash_file = (crash_dir / ("crash-seed" + std::to_string(seed))).string();
  std::snprintf(g_crash_path, sizeof g_crash_path, "%s", crash_file.c_str());
  for (int sig : {SIGSEGV, SIGABRT, SIGFPE, SIGBUS, SIGILL, SIGALRM}) std::signal(sig, dump_and_die);

  if (!replay.empty()) {
    for (const auto& p : replay) run_one(read_file(p), timeout_s);
    std::cout << "replayed " << replay.size() << " input(s) without a crash\n";
    return 0;
  }
  std::vector<Bytes> corpus;
  for (const auto& dir : corpus_dirs) {
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
      if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());  // the directory order is not; the run must be reproducible
    for (const auto& f : files) corpus.push_back(read_file(f));
  }
  if (corpus.empty()) corpus.emplace_back();
  for (const Bytes& b : corpus) run_one(b, timeout_s);
  std::mt19937_64 rng(seed);
  for (long r = 0; r < runs; ++r) {
    Bytes b = corpus[static_cast<size_t>(rng() % corpus.size())];
    const int n = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < n; ++k) mutate(b, corpus, rng, max_len);
    run_one(b, timeout_s);
  }
  std::cout << "fuzz: " << corpus.size() << " seed(s) and " << runs << " mutated input(s), seed " << seed
            << ", no crash and no hang over " << timeout_s << " s\n";
  return 0;
}
