#include "exec/io/data.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "model/scenario_io.h"

namespace eellm::exec {
namespace fs = std::filesystem;

std::vector<int32_t> encode_bytes(const std::string& text) {
  std::vector<int32_t> out(text.size());
  for (size_t i = 0; i < text.size(); ++i) out[i] = static_cast<unsigned char>(text[i]);
  return out;
}

std::string decode_bytes(const std::vector<int32_t>& tokens) {
  std::string s(tokens.size(), '\0');
  for (size_t i = 0; i < tokens.size(); ++i) s[i] = static_cast<char>(tokens[i] & 0xff);
  return s;
}

std::vector<std::string> default_corpus_files() {
  const char* env = std::getenv("EELLM_FORTUNES_DIR");
  const fs::path dir = env ? env : "/usr/share/games/fortunes";
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!e.is_regular_file(ec)) continue;
    const std::string ext = e.path().extension().string();
    if (ext == ".dat" || ext == ".u8") continue;  // strfile indexes and UTF-8 duplicates
    files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

StatusOr<std::string> read_corpus(const std::vector<std::string>& files) {
  if (files.empty())
    return Status::not_found(
        "no input text files (the default corpus needs the Debian package `fortunes`: "
        "scripts/install-deps.sh installs it)");
  std::string out;
  for (const std::string& f : files) {
    // A FIFO, device (/dev/zero), directory or link loop is refused by type before it is read.
    EELLM_ASSIGN_OR_RETURN(const std::string text, read_regular_file(f, "text file", uint64_t{1} << 36));
    std::istringstream in(text);
    std::string line;
    size_t before = out.size();
    while (std::getline(in, line)) {
      if (line == "%") continue;  // fortune separator
      out += line;
      out += '\n';
    }
    if (out.size() == before) return Status::invalid_argument("text file " + f + " is empty");
  }
  return out;
}

namespace {
constexpr char kMagic[8] = {'E', 'E', 'L', 'L', 'M', 'T', 'O', 'K'};
constexpr size_t kHeaderBytes = 32;
}  // namespace

Status write_token_file(const std::string& path, const std::vector<int32_t>& tokens, int vocab_size) {
  if (tokens.empty()) return Status::invalid_argument("no tokens to write to " + path);
  const uint32_t width = vocab_size <= 256 ? 1 : 2;
  if (vocab_size > 65536)
    return Status::invalid_argument("vocab size " + std::to_string(vocab_size) + " exceeds 65536");
  std::string buf(kHeaderBytes, '\0');
  std::memcpy(buf.data(), kMagic, 8);
  const uint32_t version = 1, vocab = static_cast<uint32_t>(vocab_size), reserved = 0;
  const uint64_t n = tokens.size();
  std::memcpy(buf.data() + 8, &version, 4);
  std::memcpy(buf.data() + 12, &width, 4);
  std::memcpy(buf.data() + 16, &vocab, 4);
  std::memcpy(buf.data() + 20, &reserved, 4);
  std::memcpy(buf.data() + 24, &n, 8);
  buf.resize(kHeaderBytes + n * width);
  for (size_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= vocab_size)
      return Status::invalid_argument("token " + std::to_string(tokens[i]) + " at " + std::to_string(i) +
                                      " is outside the vocabulary 0.." + std::to_string(vocab_size - 1));
    const uint16_t t = static_cast<uint16_t>(tokens[i]);
    std::memcpy(buf.data() + kHeaderBytes + i * width, &t, width);
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return Status::io_error("cannot write " + tmp);
    out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (!out) return Status::io_error("error writing " + tmp);
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return Status::io_error("cannot rename " + tmp + " to " + path + ": " + ec.message());
  return Status::ok();
}

StatusOr<std::vector<int32_t>> read_token_file(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return Status::not_found("data file " + path + " does not exist");
  if (!fs::is_regular_file(path, ec)) return Status::invalid_argument("data file " + path + " is not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::io_error("cannot open data file " + path + " (permissions?)");
  std::string buf((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (buf.empty()) return Status::invalid_argument("data file " + path + " is empty");
  if (buf.size() < kHeaderBytes || std::memcmp(buf.data(), kMagic, 8) != 0)
    return Status::invalid_argument(
        "data file " + path + " is not an eellm token file (no EELLMTOK header); make one with `eellm data prepare`");
  uint32_t version = 0, width = 0, vocab = 0;
  uint64_t n = 0;
  std::memcpy(&version, buf.data() + 8, 4);
  std::memcpy(&width, buf.data() + 12, 4);
  std::memcpy(&vocab, buf.data() + 16, 4);
  std::memcpy(&n, buf.data() + 24, 8);
  if (version != 1)
    return Status::invalid_argument("data file " + path + ": unsupported version " + std::to_string(version));
  if (width != 1 && width != 2)
    return Status::corruption("data file " + path + ": bytes per token is " + std::to_string(width) +
                              ", must be 1 or 2");
  if (buf.size() != kHeaderBytes + n * width)
    return Status::corruption("data file " + path + ": header says " + std::to_string(n) + " tokens of " +
                              std::to_string(width) + " bytes but the file holds " +
                              std::to_string(buf.size() - kHeaderBytes) + " bytes of tokens (truncated?)");
  if (n == 0) return Status::invalid_argument("data file " + path + " holds no tokens");
  std::vector<int32_t> tokens(n);
  for (size_t i = 0; i < n; ++i) {
    uint16_t t = 0;
    std::memcpy(&t, buf.data() + kHeaderBytes + i * width, width);
    if (t >= vocab)
      return Status::corruption("data file " + path + ": token " + std::to_string(t) + " at " + std::to_string(i) +
                                " is outside its vocabulary of " + std::to_string(vocab));
    tokens[i] = t;
  }
  return tokens;
}

double unigram_entropy(const std::vector<int32_t>& tokens, int vocab_size) {
  std::vector<double> counts(static_cast<size_t>(vocab_size), 0.0);
  for (int32_t t : tokens) counts[static_cast<size_t>(t)] += 1.0;
  double h = 0.0;
  const double n = static_cast<double>(tokens.size());
  for (double c : counts)
    if (c > 0) h -= c / n * std::log(c / n);
  return h;
}

StatusOr<DataLoader> DataLoader::create(std::vector<int32_t> tokens, int vocab_size, int T, double valid_fraction,
                                        uint64_t seed) {
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= vocab_size)
      return Status::invalid_argument("token " + std::to_string(tokens[i]) + " at position " + std::to_string(i) +
                                      " is outside model.vocab_size (" + std::to_string(vocab_size) + ")");
  if (valid_fraction <= 0 || valid_fraction >= 1)
    return Status::invalid_argument("training.valid_fraction (" + std::to_string(valid_fraction) +
                                    ") must be in (0, 1)");
  DataLoader d;
  d.T_ = T;
  d.seed_ = seed;
  d.train_end_ = static_cast<size_t>(static_cast<double>(tokens.size()) * (1.0 - valid_fraction));
  const size_t need = static_cast<size_t>(T) + 1;
  if (d.train_end_ < need || tokens.size() - d.train_end_ < need)
    return Status::invalid_argument("data has " + std::to_string(tokens.size()) + " tokens; with valid_fraction " +
                                    std::to_string(valid_fraction) + " both splits need at least seq_length+1 (" +
                                    std::to_string(need) + ") tokens");
  d.tokens_ = std::move(tokens);
  d.shuffle_epoch();
  return d;
}

void DataLoader::shuffle_epoch() {
  const size_t windows = (train_end_ - 1) / static_cast<size_t>(T_);
  order_.resize(windows);
  for (size_t i = 0; i < windows; ++i) order_[i] = i * static_cast<size_t>(T_);
  std::mt19937_64 rng(seed_ * 0x9E3779B97F4A7C15ull + pos_.epoch);
  for (size_t i = windows; i > 1; --i) std::swap(order_[i - 1], order_[rng() % i]);  // Fisher–Yates
}

void DataLoader::set_position(DataPosition p) {
  pos_ = p;
  shuffle_epoch();
}

void DataLoader::next_train(int B, int32_t* inputs, int32_t* targets) {
  for (int b = 0; b < B; ++b) {
    if (pos_.index >= order_.size()) {
      pos_.epoch += 1;
      pos_.index = 0;
      shuffle_epoch();
    }
    const size_t start = order_[pos_.index++];
    for (int t = 0; t < T_; ++t) {
      inputs[b * T_ + t] = tokens_[start + static_cast<size_t>(t)];
      targets[b * T_ + t] = tokens_[start + static_cast<size_t>(t) + 1];
    }
  }
}

void DataLoader::valid_batch(int batch, int B, int32_t* inputs, int32_t* targets) const {
  const size_t n_valid = tokens_.size() - train_end_;
  const size_t windows = (n_valid - 1) / static_cast<size_t>(T_);
  for (int b = 0; b < B; ++b) {
    const size_t w = (static_cast<size_t>(batch) * B + b) % windows;
    const size_t start = train_end_ + w * static_cast<size_t>(T_);
    for (int t = 0; t < T_; ++t) {
      inputs[b * T_ + t] = tokens_[start + static_cast<size_t>(t)];
      targets[b * T_ + t] = tokens_[start + static_cast<size_t>(t) + 1];
    }
  }
}

}  // namespace eellm::exec
