// Trainer: single-process training of the early-exit GPT from a Scenario — data, model, AdamW,
// exit-weight schedule, gradient accumulation, evaluation, metrics, progress and checkpoints.
// total loss = final_exit_weight·final + Σᵢ exit_loss_weight_at(i, iter)·exitᵢ, averaged over the
// microbatches of the iteration. Not thread-safe; one Trainer per process.
#pragma once

#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "exec/backend/backend.h"
#include "exec/gpt/gpt_model.h"
#include "exec/gpt/optimizer.h"
#include "exec/io/data.h"
#include "exec/io/dist_checkpoint.h"
#include "model/scenario.h"

namespace eellm::exec {

struct TrainOptions {
  int steps = -1;                     // train until this many iterations are done; -1 → training.train_iters
  std::string data_path;              // token file; empty → training.data_path, else the default corpus
  std::string save_dir;               // checkpoints (every training.save_interval and at the end)
  std::string resume_dir;             // resume from this checkpoint directory
  CheckpointReadOptions resume_read;  // what the resume accepts (NaN/Inf weights only when asked)
  std::string metrics_path;           // JSONL, one line per iteration and per evaluation
  int num_threads = 0;                // 0 → execution.num_threads, 0 there → all cores
  std::ostream* log = nullptr;        // progress and the start-up table; null → silent
  std::vector<int> chunk_layers;      // split the model into chunks (tests); empty → one chunk
};

struct StepResult {
  int iteration = 0;             // the iteration just completed (1-based count)
  std::vector<float> exit_loss;  // mean over microbatches, per exit
  float final_loss = 0;
  float total_loss = 0;  // the weighted objective
  double grad_norm = 0, lr = 0;
  double seconds = 0;
};

// Validation loss per head: exits in model order, then the final head.
struct EvalResult {
  std::vector<double> loss;
  std::vector<std::string> names;  // "exit@2", ..., "final"
};

// Whether the progress log prints a line after `iteration` (of a run to `steps` that started after
// `start`): every log_every steps, the first and the last, and also when more than kLogQuietSeconds
// of steps passed since the last line (so one step longer than a minute is not a minute of silence).
inline constexpr double kLogQuietSeconds = 10;
bool log_line_due(int iteration, int start, int steps, int log_every, double seconds_since_line);

class Trainer {
 public:
  static StatusOr<std::unique_ptr<Trainer>> create(const Scenario& scenario, const TrainOptions& options);

  // Runs iterations until `options.steps` are done, logging, evaluating and saving as configured.
  Status train();
  // One iteration. A non-finite loss or gradient is an error naming the step and the head/tensor;
  // the parameters are left as they were before the step.
  StatusOr<StepResult> step();
  EvalResult evaluate(int iters);
  Status save(const std::string& dir);

  int iteration() const { return progress_.iteration; }
  GptModel& model() { return *model_; }
  const Backend& backend() const { return *be_; }
  const GptConfig& config() const { return cfg_; }
  const DataLoader& data() const { return *loader_; }
  const Scenario& scenario() const { return scenario_; }
  int target_steps() const { return steps_; }
  // Prints the effective configuration table.
  void print_config(std::ostream& os) const;

 private:
  Trainer() = default;
  void log_metrics(const std::string& json_line);

  Scenario scenario_;
  TrainOptions opt_;
  GptConfig cfg_;
  std::unique_ptr<Backend> be_;
  std::unique_ptr<GptModel> model_;
  std::unique_ptr<DataLoader> loader_;
  AdamW adam_;
  TrainProgress progress_;
  int steps_ = 0;
  int num_microbatches_ = 1;
  std::string data_source_;
  std::vector<int32_t> in_, tgt_;
};

}  // namespace eellm::exec
