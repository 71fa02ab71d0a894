#include "exec/train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "exec/backend/device.h"
#include "exec/backend/gemm_choice.h"
#include "exec/train/preempt.h"
#include "model/layout.h"

namespace eellm::exec {
namespace {

std::string fmt_duration(double s) {
  char buf[32];
  const int t = static_cast<int>(s + 0.5);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%dh%02dm", t / 3600, (t / 60) % 60);
  else
    std::snprintf(buf, sizeof buf, "%dm%02ds", t / 60, t % 60);
  return buf;
}

std::vector<std::string> head_names(const GptConfig& c) {
  std::vector<std::string> n;
  for (int l : c.exit_layer) n.push_back("exit@" + std::to_string(l));
  n.push_back("final");
  return n;
}

}  // namespace

StatusOr<std::unique_ptr<Trainer>> Trainer::create(const Scenario& scenario, const TrainOptions& options) {
  std::unique_ptr<Trainer> tr(new Trainer());
  tr->scenario_ = scenario;
  tr->opt_ = options;
  EELLM_ASSIGN_OR_RETURN(tr->cfg_, make_gpt_config(scenario));
  EELLM_ASSIGN_OR_RETURN(Layout lay, derive_layout(scenario));
  if (lay.tp * lay.pp * lay.dp != 1)
    return Status::invalid_argument("single-process training needs tp × pp × dp = 1; this scenario has tp " +
                                    std::to_string(lay.tp) + ", pp " + std::to_string(lay.pp) + ", dp " +
                                    std::to_string(lay.dp) + " (run it with mpirun)");
  tr->num_microbatches_ = lay.num_microbatches;
  tr->steps_ = options.steps >= 0 ? options.steps : scenario.training.train_iters;
  const int threads = options.num_threads > 0 ? options.num_threads : scenario.execution.num_threads;
  // Before any tensor is allocated: the CUDA backend switches tensors to managed memory.
  EELLM_ASSIGN_OR_RETURN(tr->be_, make_backend(scenario, threads));

  // Data.
  std::vector<int32_t> tokens;
  const std::string path = !options.data_path.empty() ? options.data_path : scenario.training.data_path;
  if (!path.empty()) {
    EELLM_ASSIGN_OR_RETURN(tokens, read_token_file(path));
    tr->data_source_ = path;
  } else {
    EELLM_ASSIGN_OR_RETURN(std::string text, read_corpus(default_corpus_files()));
    tokens = encode_bytes(text);
    tr->data_source_ = "default corpus (Debian fortunes, byte-level)";
  }
  const int T = scenario.model.seq_length;
  auto loader =
      DataLoader::create(std::move(tokens), tr->cfg_.V, T, scenario.training.valid_fraction, scenario.training.seed);
  if (!loader.is_ok()) return loader.status().with_context(tr->data_source_);
  tr->loader_ = std::make_unique<DataLoader>(std::move(loader).value());

  tr->model_ = std::make_unique<GptModel>(tr->cfg_, *tr->be_, options.chunk_layers);
  init_params(tr->model_->params(), tr->cfg_, scenario.training.seed);
  tr->adam_.init(tr->cfg_);
  tr->progress_.seed = scenario.training.seed;
  if (!options.resume_dir.empty()) {
    EELLM_RETURN_IF_ERROR(load_checkpoint(options.resume_dir, tr->cfg_, tr->model_->params(), &tr->adam_,
                                          &tr->progress_, options.resume_read));
    tr->loader_->set_position(tr->progress_.data);
  }
  const size_t n = static_cast<size_t>(scenario.training.micro_batch_size) * T;
  tr->in_.resize(n);
  tr->tgt_.resize(n);
  return tr;
}

void Trainer::print_config(std::ostream& os) const {
  const TrainingSpec& t = scenario_.training;
  const int B = t.micro_batch_size, T = scenario_.model.seq_length;
  auto row = [&os](const std::string& k, const std::string& v) {
    os << "  " << std::left << std::setw(24) << k << v << "\n";
  };
  std::ostringstream exits;
  for (size_t i = 0; i < cfg_.exit_layer.size(); ++i)
    exits << (i ? ", " : "") << (scenario_.exits.pre_exit ? "before " : "after ") << cfg_.exit_layer[i];
  std::string head = std::string(cfg_.exit_block ? "block→" : "") + (cfg_.exit_norm ? "norm→" : "") +
                     (cfg_.exit_mlp ? "mlp→" : "") + (cfg_.untie_exits ? "own projection" : "tied projection");
  os << "eellm train: " << scenario_.name << "\n";
  row("model", std::to_string(cfg_.L) + " layers, hidden " + std::to_string(cfg_.C) + ", " + std::to_string(cfg_.NH) +
                   " heads (" + std::to_string(cfg_.G) + " kv groups, head " + std::to_string(cfg_.HS) + "), ffn " +
                   std::to_string(cfg_.F));
  row("style", std::string(to_string(cfg_.norm)) + ", " + (cfg_.rope ? "RoPE" : "learned positions") + ", " +
                   (cfg_.swiglu ? "SwiGLU" : "GELU") + ", " + (cfg_.bias ? "biases" : "no biases") + ", " +
                   (cfg_.untie_final ? "untied" : "tied") + " output");
  row("vocab", std::to_string(cfg_.V) + " (padded " + std::to_string(cfg_.Vp) + ")");
  row("parameters", std::to_string(model_->params().num_parameters()));
  row("exits", cfg_.exit_layer.empty() ? "none" : exits.str() + "; head " + head);
  std::ostringstream w;
  for (size_t i = 0; i < cfg_.exit_layer.size(); ++i)
    w << (i ? ", " : "") << exit_loss_weight_at(scenario_.exits, static_cast<int>(i), 0) << "→"
      << exit_loss_weight_at(scenario_.exits, static_cast<int>(i), 1 << 30);
  row("exit loss weights", (cfg_.exit_layer.empty() ? std::string("-") : w.str()) + " (warm-up " +
                               std::to_string(scenario_.exits.exit_layer_weight_warmup_iters) + " iters), final " +
                               std::to_string(scenario_.exits.final_exit_weight));
  row("batch", "micro " + std::to_string(B) + " × " + std::to_string(num_microbatches_) + " microbatches = global " +
                   std::to_string(t.global_batch_size) + " × seq " + std::to_string(T) + " = " +
                   std::to_string(t.global_batch_size * T) + " tokens/iter");
  std::ostringstream lr;
  lr << t.lr << " → " << t.min_lr << " " << to_string(t.lr_decay_style) << ", warm-up " << t.lr_warmup_iters << ", wd "
     << t.weight_decay << ", clip " << t.clip_grad << ", betas " << t.adam_beta1 << "/" << t.adam_beta2;
  row("optimizer", "AdamW, lr " + lr.str());
  row("iterations", std::to_string(progress_.iteration) + " → " + std::to_string(steps_) +
                        (opt_.resume_dir.empty() ? "" : " (resumed from " + opt_.resume_dir + ")"));
  row("data", data_source_ + ": " + std::to_string(loader_->train_tokens()) + " train / " +
                  std::to_string(loader_->valid_tokens()) + " validation tokens");
  row("backend", be_->name() + ", " + std::to_string(be_->num_threads()) + " threads, fp32, GEMM " + be_->gemm_name());
  if (!opt_.save_dir.empty())
    row("checkpoints",
        opt_.save_dir + (t.save_interval > 0 ? " every " + std::to_string(t.save_interval) : "") + " and at the end");
}

void Trainer::log_metrics(const std::string& line) {
  if (opt_.metrics_path.empty()) return;
  std::ofstream out(opt_.metrics_path, std::ios::app);
  out << line << "\n";
}

StatusOr<StepResult> Trainer::step() {
  const auto t0 = std::chrono::steady_clock::now();
  const TrainingSpec& t = scenario_.training;
  const int B = t.micro_batch_size, T = scenario_.model.seq_length, M = num_microbatches_;
  const int iter = progress_.iteration;
  HeadWeights w;
  for (int e = 0; e < cfg_.num_exits(); ++e)
    w.exits.push_back(static_cast<float>(exit_loss_weight_at(scenario_.exits, e, iter) / M));
  w.final_weight = static_cast<float>(scenario_.exits.final_exit_weight / M);

  StepResult r;
  r.exit_loss.assign(static_cast<size_t>(cfg_.num_exits()), 0.0f);
  const DataPosition before = loader_->position();
  model_->zero_grads();
  const std::vector<std::string> names = head_names(cfg_);
  for (int mb = 0; mb < M; ++mb) {
    loader_->next_train(B, in_.data(), tgt_.data());
    MicrobatchLosses l = model_->run_microbatch(in_.data(), tgt_.data(), B, T, w, true);
    for (int e = 0; e <= cfg_.num_exits(); ++e) {
      const float v = e < cfg_.num_exits() ? l.exits[static_cast<size_t>(e)] : l.final_loss;
      if (!std::isfinite(v)) {
        loader_->set_position(before);
        return Status::failed_precondition("non-finite loss at step " + std::to_string(iter + 1) + ": " +
                                           names[static_cast<size_t>(e)] + " loss is " + std::to_string(v) +
                                           " (microbatch " + std::to_string(mb) + "); parameters left unchanged");
      }
    }
    for (int e = 0; e < cfg_.num_exits(); ++e)
      r.exit_loss[static_cast<size_t>(e)] += l.exits[static_cast<size_t>(e)] / M;
    r.final_loss += l.final_loss / M;
  }
  // One pass over the gradients: Σ g² per tensor is non-finite exactly when the tensor holds an inf
  // or NaN (a finite float's square is < 1.2e77 in double), and the sum is the norm AdamW needs.
  double grad_sq = 0.0;
  for (auto& [name, g] : model_->grads().named()) {
    const double sq = be_->sum_squares(g->ptr(), g->numel());
    grad_sq += sq;
    if (!std::isfinite(sq)) {
      loader_->set_position(before);
      return Status::failed_precondition("non-finite gradient at step " + std::to_string(iter + 1) + " in tensor " +
                                         name + "; parameters left unchanged");
    }
  }
  r.total_loss = static_cast<float>(scenario_.exits.final_exit_weight) * r.final_loss;
  for (int e = 0; e < cfg_.num_exits(); ++e)
    r.total_loss +=
        static_cast<float>(exit_loss_weight_at(scenario_.exits, e, iter)) * r.exit_loss[static_cast<size_t>(e)];
  StepStats s = adam_.step(*be_, model_->params(), model_->grads(), t, iter, grad_sq);
  for (auto& [name, p] : model_->params().named()) {
    if (!be_->all_finite(p->ptr(), p->numel()))
      return Status::failed_precondition("non-finite parameter after the update of step " + std::to_string(iter + 1) +
                                         " in tensor " + name);
  }
  progress_.iteration = iter + 1;
  progress_.data = loader_->position();
  r.iteration = progress_.iteration;
  r.grad_norm = s.grad_norm;
  r.lr = s.lr;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

EvalResult Trainer::evaluate(int iters) {
  const int B = scenario_.training.micro_batch_size, T = scenario_.model.seq_length;
  EvalResult r;
  r.names = head_names(cfg_);
  r.loss.assign(r.names.size(), 0.0);
  HeadWeights w;
  w.exits.assign(static_cast<size_t>(cfg_.num_exits()), 0.0f);
  std::vector<int32_t> in(in_.size()), tgt(tgt_.size());
  for (int i = 0; i < iters; ++i) {
    loader_->valid_batch(i, B, in.data(), tgt.data());
    MicrobatchLosses l = model_->run_microbatch(in.data(), tgt.data(), B, T, w, false);
    for (int e = 0; e < cfg_.num_exits(); ++e)
      r.loss[static_cast<size_t>(e)] += l.exits[static_cast<size_t>(e)] / iters;
    r.loss.back() += l.final_loss / iters;
  }
  return r;
}

Status Trainer::save(const std::string& dir) {
  return save_checkpoint(dir, scenario_, cfg_, model_->params(), &adam_, progress_);
}

bool log_line_due(int iteration, int start, int steps, int log_every, double seconds_since_line) {
  return iteration % std::max(1, log_every) == 0 || iteration == steps || iteration == start + 1 ||
         seconds_since_line > kLogQuietSeconds;
}

Status Trainer::train() {
  const TrainingSpec& t = scenario_.training;
  if (opt_.log) print_config(*opt_.log);
  const double tokens_per_iter = static_cast<double>(t.global_batch_size) * scenario_.model.seq_length;
  const int start = progress_.iteration;
  double elapsed = 0;
  const int log_every = std::max(1, t.log_interval);
  double since_line = 0;  // seconds of steps since the last progress line
  while (progress_.iteration < steps_) {
    StatusOr<StepResult> sr = step();
    if (!sr.is_ok()) {
      if (opt_.log && !opt_.save_dir.empty())
        *opt_.log << "stopping; the last good checkpoint in " << opt_.save_dir << " is kept\n";
      return sr.status();
    }
    const StepResult& r = *sr;
    elapsed += r.seconds;
    since_line += r.seconds;
    const double tps = tokens_per_iter * (r.iteration - start) / std::max(elapsed, 1e-9);
    nlohmann::json j{{"step", r.iteration}, {"loss", r.total_loss},     {"final", r.final_loss}, {"exits", r.exit_loss},
                     {"lr", r.lr},          {"grad_norm", r.grad_norm}, {"tokens_per_s", tps},   {"step_s", r.seconds}};
    if (r.iteration == start + 1) j["gemm"] = gemm_run_note(be_->gemm_name());  // the run's first line: its GEMM
    log_metrics(j.dump());
    if (opt_.log && log_line_due(r.iteration, start, steps_, log_every, since_line)) {
      since_line = 0;
      char buf[256];
      std::ostringstream line;
      std::snprintf(buf, sizeof buf, "step %5d/%d | loss %.4f |", r.iteration, steps_, r.total_loss);
      line << buf;
      for (size_t e = 0; e < r.exit_loss.size(); ++e) {
        std::snprintf(buf, sizeof buf, " exit@%d %.4f", cfg_.exit_layer[e], r.exit_loss[e]);
        line << buf;
      }
      std::snprintf(buf, sizeof buf, " final %.4f | lr %.2e | gnorm %.3f | %.0f tok/s | ETA %s", r.final_loss, r.lr,
                    r.grad_norm, tps, fmt_duration(elapsed / (r.iteration - start) * (steps_ - r.iteration)).c_str());
      line << buf;
      *opt_.log << line.str() << std::endl;
    }
    if (t.eval_interval > 0 && r.iteration % t.eval_interval == 0) {
      EvalResult ev = evaluate(std::max(1, t.eval_iters));
      nlohmann::json e{{"step", r.iteration}, {"eval", nlohmann::json::object()}};
      std::ostringstream line;
      line << "  validation @" << r.iteration << ":";
      for (size_t i = 0; i < ev.loss.size(); ++i) {
        e["eval"][ev.names[i]] = ev.loss[i];
        line << " " << ev.names[i] << " " << std::fixed << std::setprecision(4) << ev.loss[i] << " (ppl "
             << std::setprecision(2) << std::exp(ev.loss[i]) << ")";
      }
      log_metrics(e.dump());
      if (opt_.log) *opt_.log << line.str() << std::endl;
    }
    const bool preempted = preempt_requested() && r.iteration != steps_;  // SIGUSR1/SIGTERM (exec/train/preempt.h)
    if (!opt_.save_dir.empty() && r.iteration != steps_ &&
        (preempted || (t.save_interval > 0 && r.iteration % t.save_interval == 0)))
      EELLM_RETURN_IF_ERROR(save(opt_.save_dir));
    if (preempted) return preempted_status(r.iteration, opt_.save_dir);
  }
  if (!opt_.save_dir.empty()) {
    EELLM_RETURN_IF_ERROR(save(opt_.save_dir));
    if (opt_.log) *opt_.log << "saved checkpoint " << opt_.save_dir << " at iteration " << progress_.iteration << "\n";
  }
  return Status::ok();
}

}  // namespace eellm::exec
