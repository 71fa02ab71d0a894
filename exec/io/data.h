// Data: the byte-level tokenizer, the token file written by `eellm data prepare`, the default
// corpus (Debian's `fortunes` package, real English text) and a loader with a train/validation
// split and a seeded sample order.
//
// Token file layout (little-endian): magic "EELLMTOK" (8 bytes), u32 version (1), u32 bytes per
// token (1 or 2), u32 vocab size, u32 reserved, u64 number of tokens, then the tokens.
// Thread-compatible: no shared state.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/status.h"

namespace eellm::exec {

inline constexpr int kByteVocab = 256;

// Byte-level tokenizer: token = byte value (vocab 256). Lossless for any input.
std::vector<int32_t> encode_bytes(const std::string& text);
std::string decode_bytes(const std::vector<int32_t>& tokens);

// The fortune files of the default corpus (sorted, from /usr/share/games/fortunes or $EELLM_FORTUNES_DIR).
std::vector<std::string> default_corpus_files();
// Reads text files; fortune files have their lines of only "%" (separators) removed.
StatusOr<std::string> read_corpus(const std::vector<std::string>& files);

Status write_token_file(const std::string& path, const std::vector<int32_t>& tokens, int vocab_size);
StatusOr<std::vector<int32_t>> read_token_file(const std::string& path);

// Unigram entropy (nats/token) of a token stream: the loss of the best context-free predictor.
double unigram_entropy(const std::vector<int32_t>& tokens, int vocab_size);

// Where the loader stands; saved in checkpoints so a resumed run sees the same batches.
struct DataPosition {
  uint64_t epoch = 0;
  uint64_t index = 0;  // next window within the epoch's permutation
};

// Splits the tokens: the first (1 − valid_fraction) for training, the rest for validation.
// Training windows of T+1 tokens start at multiples of T and are visited in a permutation seeded
// by (seed, epoch); validation windows are read in order.
class DataLoader {
 public:
  static StatusOr<DataLoader> create(std::vector<int32_t> tokens, int vocab_size, int T, double valid_fraction,
                                     uint64_t seed);
  // Fills B×T inputs and targets with the next training batch and advances the position.
  void next_train(int B, int32_t* inputs, int32_t* targets);
  // The `batch`-th validation batch (wraps around the validation split).
  void valid_batch(int batch, int B, int32_t* inputs, int32_t* targets) const;
  DataPosition position() const { return pos_; }
  void set_position(DataPosition p);
  size_t train_tokens() const { return train_end_; }
  size_t valid_tokens() const { return tokens_.size() - train_end_; }
  const std::vector<int32_t>& tokens() const { return tokens_; }

 private:
  void shuffle_epoch();
  std::vector<int32_t> tokens_;
  size_t train_end_ = 0;
  int T_ = 0;
  uint64_t seed_ = 0;
  std::vector<uint64_t> order_;  // window starts of the current epoch
  DataPosition pos_;
};

}  // namespace eellm::exec
