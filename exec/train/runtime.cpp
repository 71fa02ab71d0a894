// PipelineRuntime: the interpreter of one pipeline rank's instruction list (see runtime.h).
#include "exec/train/runtime.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <thread>
#include <utility>

#include "exec/backend/device.h"
#include "exec/gpt/optimizer.h"
#include "exec/gpt/tp_shard.h"

namespace eellm::exec {
namespace {

std::string str(int v) {
  return std::to_string(v);
}

bool starts_with(const std::string& s, const std::string& p) {
  return s.compare(0, p.size(), p) == 0;
}

constexpr int kTagTimelineCount = 32000;
constexpr int kTagTimelineData = 32001;

}  // namespace

StatusOr<Schedule> runtime_schedule(const Scenario& scenario) {
  EELLM_ASSIGN_OR_RETURN(const Layout layout, derive_layout(scenario));
  EELLM_ASSIGN_OR_RETURN(Schedule schedule, make_schedule(scenario, layout));
  EELLM_RETURN_IF_ERROR(check_schedule(schedule));
  return schedule;
}

StatusOr<std::unique_ptr<PipelineRuntime>> PipelineRuntime::create(const Scenario& scenario, Communicators& comms,
                                                                   const RuntimeOptions& options) {
  std::unique_ptr<PipelineRuntime> rt(new PipelineRuntime());
  rt->scenario_ = scenario;
  rt->opt_ = options;
  rt->comms_ = &comms;
  EELLM_ASSIGN_OR_RETURN(rt->layout_, derive_layout(scenario));
  const Layout& L = rt->layout_;
  const ParallelDims& d = comms.groups.dims;
  if (d.tp != L.tp || d.pp != L.pp || d.dp != L.dp)
    return Status::invalid_argument("the communicators were built for tp " + str(d.tp) + ", pp " + str(d.pp) + ", dp " +
                                    str(d.dp) + " but the scenario's layout is tp " + str(L.tp) + ", pp " + str(L.pp) +
                                    ", dp " + str(L.dp));
  EELLM_ASSIGN_OR_RETURN(rt->schedule_, runtime_schedule(scenario));
  if (2 * L.num_microbatches * L.vp >= kTagTimelineCount)
    return Status::invalid_argument("too many microbatches (" + str(L.num_microbatches) + ") for message tags");
  rt->pp_rank_ = comms.groups.coords.pp;
  EELLM_ASSIGN_OR_RETURN(rt->full_cfg_, make_gpt_config(scenario));
  EELLM_ASSIGN_OR_RETURN(rt->cfg_, local_config(rt->full_cfg_, L.tp));
  // Before any tensor is allocated: the CUDA backend switches tensors to managed memory.
  EELLM_ASSIGN_OR_RETURN(rt->be_, make_backend(scenario, options.num_threads));

  // Chunks of this rank, and the tensors they own.
  const bool tuning = rt->schedule_.kind == ScheduleKind::kEETuning;
  std::vector<std::string> prefixes;
  bool wte = false, counts_wte = rt->pp_rank_ == 0;
  for (int c = 0; c < L.vp; ++c) {
    const ChunkLayout& cl = L.chunk(rt->pp_rank_, c);
    auto ch = std::make_unique<GptChunk>(rt->cfg_, cl.first_layer, cl.num_layers, cl.has_embedding, cl.has_final_head);
    ch->set_backend(rt->be_.get());
    ch->set_progress_hook([r = rt.get()] { r->progress(); });
    EELLM_RETURN_IF_ERROR(
        ch->set_tensor_parallel(comms.tensor.get(), options.recv_timeout_s, scenario.parallel.sequence_parallel));
    std::vector<int> want;
    for (int x : cl.exits) want.push_back(L.exits[static_cast<size_t>(x)].index);
    if (ch->exits() != want)
      return Status::internal("chunk " + str(c) + " of stage " + str(rt->pp_rank_) +
                              ": the layout and GptChunk place exits differently");
    for (int i = 0; i < cl.num_layers; ++i) prefixes.push_back("layers." + str(cl.first_layer + i) + ".");
    for (int e : ch->exits()) {
      prefixes.push_back("exits." + str(e) + ".");
      if (!rt->cfg_.untie_exits) wte = true;
    }
    if (cl.has_embedding) wte = true, prefixes.push_back("wpe");
    if (cl.has_final_head) {
      prefixes.push_back("lnf_");
      if (rt->cfg_.untie_final)
        prefixes.push_back("lm_head");
      else
        wte = true;
    }
    rt->chunks_.push_back(std::move(ch));
  }
  if (wte) prefixes.push_back("wte");
  // Held: every tensor the chunks read; owned (updated): the same, but EE-Tuning's frozen backbone.
  const std::vector<std::string> held_prefixes = prefixes;
  if (tuning) std::erase_if(prefixes, [](const std::string& p) { return !starts_with(p, "exits."); });
  auto matches = [](const std::string& n, const std::vector<std::string>& pre) {
    return std::any_of(pre.begin(), pre.end(), [&](const std::string& p) { return starts_with(n, p); });
  };

  // Local (tp-shard) shapes; only held tensors keep storage. Values: the full model initialised as
  // the single-process Trainer does, then this rank's shard of each held tensor.
  const int tp_rank = comms.groups.coords.tp;
  // AdamW moments live in GradSync (sharded over DP with ZeRO-1), not here.
  for (GptParams* gp : {&rt->params_, &rt->grads_}) {
    gp->allocate(rt->cfg_);
    for (auto& [n, t] : gp->named())
      if (!matches(n, held_prefixes)) *t = Tensor();
  }
  {
    GptParams full;
    full.allocate(rt->full_cfg_);
    init_params(full, rt->full_cfg_, scenario.training.seed);
    std::map<std::string, const Tensor*> by_name;
    for (auto& [n, t] : std::as_const(full).named()) by_name[n] = t;
    for (auto& [n, t] : rt->params_.named()) {
      EELLM_ASSIGN_OR_RETURN(ShardSpec spec, shard_spec(rt->full_cfg_, n, L.tp, tp_rank));
      *t = extract_shard(*by_name.at(n), spec);
    }
  }
  auto P = rt->params_.named();
  auto G = rt->grads_.named();
  for (size_t i = 0; i < P.size(); ++i) {
    const std::string& n = P[i].first;
    if (!matches(n, prefixes)) continue;
    rt->owned_names_.push_back(n);
    rt->owned_.emplace_back(P[i].second, G[i].second);
    // Tied wte copies count once (stage 0), tp-replicated tensors once (tp rank 0).
    rt->owned_counts_in_norm_.push_back((n != "wte" || counts_wte) && (tp_rank == 0 || !is_tp_replicated(n)));
  }

  EELLM_RETURN_IF_ERROR(rt->bind_schedule(comms));
  return rt;
}

Status PipelineRuntime::bind_schedule(Communicators& comms) {
  const Layout& L = layout_;
  const ParallelDims& d = comms.groups.dims;
  const bool tuning = schedule_.kind == ScheduleKind::kEETuning;
  // The schedule decides who reduces what: check the embedding group, build the optimiser group.
  std::vector<int> emb_stages, opt_stages;
  for (int r = 0; r < L.pp; ++r)
    for (const Instr& in : schedule_.ranks[static_cast<size_t>(r)]) {
      if (in.kind == InstrKind::kAllReduceEmbedding) emb_stages.push_back(r);
      if (in.kind == InstrKind::kOptimizerStep) opt_stages.push_back(r);
    }
  std::vector<int> have;
  for (int w : comms.groups.embedding) have.push_back(coords_of(d, w).pp);
  const bool member = std::find(emb_stages.begin(), emb_stages.end(), pp_rank_) != emb_stages.end();
  if (!tuning && member && have != emb_stages)
    return Status::internal("the embedding group of the communicators differs from the schedule's AR-EMB ranks");
  const bool trains = std::find(opt_stages.begin(), opt_stages.end(), pp_rank_) != opt_stages.end();
  EELLM_ASSIGN_OR_RETURN(trainers_,
                         comms.pipeline->subgroup(trains ? opt_stages : std::vector<int>{}, "optimizer group"));

  const auto& list = instructions();
  for (size_t i = 0; i < list.size(); ++i) {
    const Instr& in = list[i];
    if (in.kind == InstrKind::kBackward || in.kind == InstrKind::kBackwardInput)
      has_backward_.insert({in.microbatch, in.chunk});
    if (in.kind == InstrKind::kBackwardWeight) has_weight_step_.insert({in.microbatch, in.chunk});
    if (in.kind == InstrKind::kSendAct) sends_act_.insert({in.microbatch, in.chunk});
    if (in.kind == InstrKind::kBackward || in.kind == InstrKind::kBackwardInput ||
        in.kind == InstrKind::kBackwardWeight)
      last_backward_index_ = static_cast<int>(i);
  }
  return Status::ok();
}

int PipelineRuntime::tag(int microbatch, bool grad, int chunk) const {
  return (microbatch * 2 + (grad ? 1 : 0)) * layout_.vp + chunk;
}

size_t PipelineRuntime::activation_floats() const {
  // With sequence parallelism a stage holds (and sends) only its tp rank's rows.
  return static_cast<size_t>(chunks_.front()->rows(scenario_.training.micro_batch_size * scenario_.model.seq_length)) *
         cfg_.C;
}

std::string PipelineRuntime::where(const Instr& in, int index) const {
  const RankCoords& c = comms_->groups.coords;
  return "rank " + str(comms_->groups.world_rank) + " (pipeline stage " + str(c.pp) + ", data-parallel rank " +
         str(c.dp) + ", tensor-parallel rank " + str(c.tp) + "), instruction " + str(index) + " " + to_string(in);
}

StatusOr<IterationResult> PipelineRuntime::run_iteration(const std::vector<int32_t>& inputs,
                                                         const std::vector<int32_t>& targets, int iteration) {
  const int B = scenario_.training.micro_batch_size, T = scenario_.model.seq_length;
  const size_t want = static_cast<size_t>(schedule_.num_microbatches) * B * T;
  if (inputs.size() != want || targets.size() != want)
    return Status::invalid_argument("run_iteration needs " + str(schedule_.num_microbatches) + " microbatches of " +
                                    str(B) + "×" + str(T) + " tokens (" + std::to_string(want) + "), got " +
                                    std::to_string(inputs.size()) + " inputs and " + std::to_string(targets.size()) +
                                    " targets");
  IterationResult r;
  r.iteration = iteration;
  const int E = cfg_.num_exits();
  HeadWeights w;
  const double m = schedule_.num_microbatches;
  for (int e = 0; e < E; ++e)
    w.exits.push_back(static_cast<float>(exit_loss_weight_at(scenario_.exits, e, iteration) / m));
  w.final_weight =
      schedule_.kind == ScheduleKind::kEETuning ? 0.0f : static_cast<float>(scenario_.exits.final_exit_weight / m);
  for (auto& [name, g] : grads_.named()) g->zero();
  states_.clear(), w_states_.clear(), act_in_.clear(), grad_in_.clear(), grad_out_.clear(), events_.clear();
  loss_sum_.assign(static_cast<size_t>(E + 1), 0.0);
  loss_count_.assign(static_cast<size_t>(E + 1), 0.0);
  dp_pending_ = false;
  dp_timings_.clear();
  sends_in_flight_.clear();
  comms_->pipeline->record_send_completions(opt_.record_timeline);
  comms_->pipeline->take_completed_sends();  // older sends (the last iteration's timeline) are no SEND events

  const double timeout = opt_.recv_timeout_s;
  EELLM_RETURN_IF_ERROR(comms_->world->barrier(timeout).with_context("rank " + str(comms_->groups.world_rank) +
                                                                     ": barrier before iteration " + str(iteration)));
  t_origin_ns_ = steady_now_ns();
  posted_recv_[0] = posted_recv_[1] = -1;
  EELLM_RETURN_IF_ERROR(post_receives(0).with_context("rank " + str(comms_->groups.world_rank)));
  const auto& list = instructions();
  for (size_t i = 0; i < list.size(); ++i) {
    const Instr& in = list[i];
    const int idx = static_cast<int>(i);
    if (opt_.fault != FaultKind::kNone && comms_->groups.world_rank == opt_.fault_world_rank &&
        opt_.fault_instruction == idx) {
      std::fprintf(stderr, "eellm: fault injection: %s %s\n", where(in, idx).c_str(),
                   opt_.fault == FaultKind::kExit ? "is killed" : "hangs");
      std::fflush(stderr);
      if (opt_.fault == FaultKind::kExit) std::raise(SIGKILL);
      for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    TimelineEvent ev = instr_event(pp_rank_, in, idx, steady_now_ns() - t_origin_ns_, 0);
    if (in.is_send() || in.is_recv()) ev.bytes = static_cast<int64_t>(activation_floats() * sizeof(float));
    const int64_t send_id = comms_->pipeline->next_send_id();  // the id of a SEND's send
    Status st;
    if (in.kind == InstrKind::kAllReduceDP && in.has(kOverlapped) && last_backward_index_ > idx) {
      dp_pending_ = true;  // posted here; executed once the last backward has produced its gradients
      dp_pending_index_ = idx;
    } else if (in.kind == InstrKind::kOptimizerStep) {
      st = optimizer_step(iteration, r);
    } else {
      st = execute(in, idx, inputs, targets, w);
    }
    if (st.is_ok() && in.is_recv()) st = post_receives(i + 1);
    if (!st.is_ok()) return st.with_context(where(in, idx));
    ev.t1 = steady_now_ns() - t_origin_ns_;
    record(in, ev, send_id);
    EELLM_RETURN_IF_ERROR(after_instruction(idx).with_context(where(in, idx)));
    if (dp_pending_ && idx == last_backward_index_) {
      dp_pending_ = false;
      EELLM_RETURN_IF_ERROR(reduce_data_parallel().with_context(where(in, idx) + " (overlapped AR-DP)"));
      const size_t ar = static_cast<size_t>(dp_pending_index_);
      if (opt_.record_timeline)
        events_.push_back(instr_event(pp_rank_, list[ar], dp_pending_index_, ev.t1, steady_now_ns() - t_origin_ns_));
    }
  }
  EELLM_RETURN_IF_ERROR(finish_sends().with_context("rank " + str(comms_->groups.world_rank) +
                                                    ": completing the sends of iteration " + str(iteration)));
  if (!states_.empty() || !w_states_.empty() || !act_in_.empty() || !grad_in_.empty() || !grad_out_.empty())
    return Status::internal("rank " + str(comms_->groups.world_rank) + ": microbatch state left after the iteration (" +
                            std::to_string(states_.size()) + " chunk states)");

  r.dp_buckets = dp_timings_;

  // Losses: each exit lives on one stage; sum (loss, count) over the whole job.
  std::vector<double> buf = loss_sum_;
  buf.insert(buf.end(), loss_count_.begin(), loss_count_.end());
  EELLM_RETURN_IF_ERROR(comms_->world->all_reduce_sum(buf.data(), buf.size(), timeout));
  const size_t n = static_cast<size_t>(E + 1);
  auto mean = [&](size_t k) { return buf[n + k] > 0 ? buf[k] / buf[n + k] : 0.0; };
  for (size_t e = 0; e < static_cast<size_t>(E); ++e) r.exit_loss.push_back(mean(e));
  r.final_loss = mean(static_cast<size_t>(E));
  r.total_loss = scenario_.exits.final_exit_weight * r.final_loss;
  for (int e = 0; e < E; ++e)
    r.total_loss += exit_loss_weight_at(scenario_.exits, e, iteration) * r.exit_loss[static_cast<size_t>(e)];

  EELLM_RETURN_IF_ERROR(gather_timeline(r));
  return r;
}

void PipelineRuntime::record(const Instr& in, const TimelineEvent& ev, int64_t send_id) {
  if (!opt_.record_timeline) return;
  if (in.is_compute())
    append_compute_events(events_, ev, 0, 0, 0);  // the exit heads are not timed apart: one backbone event
  else if (in.is_send())
    sends_in_flight_[send_id] = ev;  // the event ends when the send completes (take_send_completions)
  else
    events_.push_back(ev);
  if (sends_in_flight_.empty()) return;
  comms_->pipeline->pending_sends();  // polls: a send may have completed during this instruction
  take_send_completions();
}

void PipelineRuntime::take_send_completions() {
  for (const SendCompletion& c : comms_->pipeline->take_completed_sends()) {
    auto it = sends_in_flight_.find(c.id);
    if (it == sends_in_flight_.end()) continue;  // a send of no SEND instruction
    it->second.t1 = c.done_ns - t_origin_ns_;
    events_.push_back(it->second);
    sends_in_flight_.erase(it);
  }
}

Status PipelineRuntime::finish_sends() {
  EELLM_RETURN_IF_ERROR(comms_->pipeline->wait_sends(opt_.recv_timeout_s));
  take_send_completions();
  if (!sends_in_flight_.empty())
    return Status::internal(comms_->pipeline->name() + ": the completion of " +
                            std::to_string(sends_in_flight_.size()) + " sends was not reported");
  return Status::ok();
}

Status PipelineRuntime::gather_timeline(IterationResult& r) {
  const double timeout = opt_.recv_timeout_s;
  // Timeline: the pipeline of replica (dp 0, tp 0) sends its events to world rank 0.
  const RankCoords& c = comms_->groups.coords;
  if (opt_.record_timeline && c.dp == 0 && c.tp == 0) {
    Communicator& pipe = *comms_->pipeline;
    if (pipe.rank() != 0) {
      std::vector<int64_t> data;
      pack_events(events_, data);
      const int64_t count = static_cast<int64_t>(events_.size());
      EELLM_RETURN_IF_ERROR(pipe.send(&count, sizeof count, 0, kTagTimelineCount));
      EELLM_RETURN_IF_ERROR(pipe.send(data.data(), data.size() * sizeof(int64_t), 0, kTagTimelineData));
      EELLM_RETURN_IF_ERROR(pipe.wait_sends(timeout));
    } else {
      r.timeline.num_ranks = layout_.pp;
      r.timeline.events = events_;
      for (int p = 1; p < pipe.size(); ++p) {
        int64_t count = 0;
        EELLM_RETURN_IF_ERROR(pipe.recv(&count, sizeof count, p, kTagTimelineCount, timeout));
        std::vector<int64_t> data(static_cast<size_t>(count) * kPackedEventFields);
        EELLM_RETURN_IF_ERROR(pipe.recv(data.data(), data.size() * sizeof(int64_t), p, kTagTimelineData, timeout));
        EELLM_RETURN_IF_ERROR(unpack_events(data.data(), static_cast<size_t>(count), r.timeline.events)
                                  .with_context("timeline of pipeline rank " + str(p)));
      }
      r.timeline.sort_events();
    }
  }
  return Status::ok();
}

Status PipelineRuntime::execute(const Instr& in, int index, const std::vector<int32_t>& inputs,
                                const std::vector<int32_t>& targets, const HeadWeights& w) {
  switch (in.kind) {
    case InstrKind::kForward:
      return run_forward(in, inputs, targets, w);
    case InstrKind::kBackward:
    case InstrKind::kBackwardInput:
      return run_backward(in, index);
    case InstrKind::kBackwardWeight: {
      auto st = w_states_.find({in.microbatch, in.chunk});
      if (st == w_states_.end()) return missing(in, "the state kept by BWD_INPUT");
      EELLM_ASSIGN_OR_RETURN(const bool hooked, arm_layer_hook(in.chunk, index));
      chunks_[static_cast<size_t>(in.chunk)]->backward_weight(st->second, params_, grads_);
      if (hooked) EELLM_RETURN_IF_ERROR(disarm_layer_hook(in.chunk));
      w_states_.erase(st);
      return Status::ok();
    }
    case InstrKind::kSendAct:
    case InstrKind::kSendGrad:
      return send(in);
    case InstrKind::kRecvAct:
    case InstrKind::kRecvGrad:  // completes the receive posted ahead (post_receives), if it was
      return comms_->pipeline->recv(receive_buffer(in).ptr(), activation_floats() * sizeof(float), in.peer,
                                    tag(in.microbatch, in.kind == InstrKind::kRecvGrad, in.chunk), opt_.recv_timeout_s);
    case InstrKind::kAllReduceDP:
      return reduce_data_parallel();
    case InstrKind::kAllReduceEmbedding:
      if (schedule_.kind == ScheduleKind::kEETuning) return Status::ok();  // frozen: nothing to reduce
      if (!comms_->embedding) return Status::internal("AR-EMB on a rank outside the embedding group");
      be_->synchronize();
      return comms_->embedding->all_reduce_sum(grads_.wte.ptr(), grads_.wte.numel(), opt_.recv_timeout_s);
    case InstrKind::kOptimizerStep:
      return Status::internal("OPT is executed by run_iteration");
  }
  return Status::internal("unknown instruction kind");
}

Status PipelineRuntime::missing(const Instr& in, const char* what) const {
  return Status::internal(std::string(what) + " of microbatch " + str(in.microbatch) + " chunk " + str(in.chunk) +
                          " is not there (the schedule's order is broken)");
}

int PipelineRuntime::virtual_stage(const Instr& in) const {
  return in.chunk * layout_.pp + pp_rank_;
}

Status PipelineRuntime::run_forward(const Instr& in, const std::vector<int32_t>& inputs,
                                    const std::vector<int32_t>& targets, const HeadWeights& w) {
  const int B = scenario_.training.micro_batch_size, T = scenario_.model.seq_length;
  const Key key{in.microbatch, in.chunk};
  const int vs = virtual_stage(in);
  GptChunk& ch = *chunks_[static_cast<size_t>(in.chunk)];
  const float* input = nullptr;
  auto it = act_in_.find(key);
  if (vs > 0) {
    if (it == act_in_.end()) return missing(in, "the received activation");
    input = it->second.ptr();
  }
  HeadWeights hw = w;
  if (in.has(kTruncated)) hw.final_weight = 0.0f;
  const bool grad = has_backward_.count(key) > 0;
  ChunkState& st = states_[key];
  const size_t off = static_cast<size_t>(in.microbatch) * static_cast<size_t>(B) * static_cast<size_t>(T);
  ch.forward(st, params_, grads_, inputs.data() + off, input, targets.data() + off, B, T, hw, grad);
  EELLM_RETURN_IF_ERROR(ch.comm_status());
  if (it != act_in_.end()) act_in_.erase(it);
  for (size_t k = 0; k < ch.exits().size(); ++k) {
    const size_t e = static_cast<size_t>(ch.exits()[k]);
    if (!std::isfinite(st.exit_loss[k]))
      return Status::failed_precondition("non-finite loss of exit " + str(static_cast<int>(e)));
    loss_sum_[e] += st.exit_loss[k];
    loss_count_[e] += 1;
  }
  const ChunkLayout& cl = layout_.chunk(pp_rank_, in.chunk);
  if (cl.has_final_head && !in.has(kTruncated) && schedule_.kind != ScheduleKind::kEETuning) {
    if (!std::isfinite(st.final_loss)) return Status::failed_precondition("non-finite final loss");
    loss_sum_.back() += st.final_loss;
    loss_count_.back() += 1;
  }
  // Without a backward or a send (also EE-LLM's unsent fill forward on stage 0), nothing needs the state.
  if (!grad && !sends_act_.count(key)) states_.erase(key);
  return Status::ok();
}

Status PipelineRuntime::run_backward(const Instr& in, int index) {
  const Key key{in.microbatch, in.chunk};
  const int vs = virtual_stage(in);
  auto st = states_.find(key);
  if (st == states_.end()) return missing(in, "the forward state");
  if (in.has(kExitOnly)) {  // EE-Tuning: the heads' gradients were taken in the forward
    states_.erase(st);
    return Status::ok();
  }
  const float* dout = nullptr;
  auto g = grad_in_.find(key);
  if (vs < layout_.num_virtual_stages() - 1 && !in.has(kTruncated)) {
    if (g == grad_in_.end()) return missing(in, "the received gradient");
    dout = g->second.ptr();
  }
  float* dinput = nullptr;
  if (vs > 0) {
    Tensor& d = grad_out_[key];
    d.data.assign(activation_floats(), 0.0f);
    d.shape = {static_cast<int64_t>(activation_floats())};
    dinput = d.ptr();
  }
  GptChunk& ch = *chunks_[static_cast<size_t>(in.chunk)];
  // BWD_INPUT with a BWD_WEIGHT to follow: the zero-bubble split; the state waits for the W step.
  const bool split = in.kind == InstrKind::kBackwardInput && has_weight_step_.count(key) > 0;
  // A truncated (fill) backward starts at the chunk's deepest exit, as the simulator charges it.
  const int layers = in.has(kTruncated) ? ch.layers_to_deepest_exit() : -1;
  EELLM_ASSIGN_OR_RETURN(const bool hooked, arm_layer_hook(in.chunk, index));
  if (split)
    ch.backward_input(st->second, params_, grads_, dout, dinput, layers);
  else
    ch.backward(st->second, params_, grads_, dout, dinput, layers);
  if (hooked) EELLM_RETURN_IF_ERROR(disarm_layer_hook(in.chunk));
  EELLM_RETURN_IF_ERROR(ch.comm_status());
  if (split) w_states_[key] = std::move(st->second);
  states_.erase(st);
  if (g != grad_in_.end()) grad_in_.erase(g);
  // A backward that sends nothing (EE fill cool-down) leaves no gradient behind.
  if (vs > 0) {
    const auto& list = instructions();
    bool sends = false;
    for (size_t j = static_cast<size_t>(index) + 1; j < list.size() && !sends; ++j)
      sends = list[j].kind == InstrKind::kSendGrad && list[j].microbatch == in.microbatch && list[j].chunk == in.chunk;
    if (!sends) grad_out_.erase(key);
  }
  return Status::ok();
}

Status PipelineRuntime::send(const Instr& in) {
  const Key key{in.microbatch, in.chunk};
  const int vs = virtual_stage(in), pp = layout_.pp;
  const size_t act_bytes = activation_floats() * sizeof(float);
  Communicator& pipe = *comms_->pipeline;
  if (in.kind == InstrKind::kSendAct) {
    auto st = states_.find(key);
    if (st == states_.end()) return missing(in, "the forward output");
    be_->synchronize();  // a host-memory (MPI) communicator reads what a device backend wrote
    EELLM_RETURN_IF_ERROR(pipe.send(st->second.output(), act_bytes, in.peer, tag(in.microbatch, false, (vs + 1) / pp)));
    if (!has_backward_.count(key)) states_.erase(st);
    return Status::ok();
  }
  auto g = grad_out_.find(key);
  if (g == grad_out_.end()) return missing(in, "the input gradient");
  be_->synchronize();
  EELLM_RETURN_IF_ERROR(pipe.send(g->second.ptr(), act_bytes, in.peer, tag(in.microbatch, true, (vs - 1) / pp)));
  grad_out_.erase(g);
  return Status::ok();
}

StatusOr<GradSync*> PipelineRuntime::grad_sync() {
  if (grad_sync_) return grad_sync_.get();
  // Readiness group of each owned tensor: the local chunk that produces its gradient (-1: several
  // chunks or the tied embedding, ready only at AR-DP).
  std::vector<SyncTensor> ts;
  const bool in_emb_group = comms_->embedding && schedule_.kind != ScheduleKind::kEETuning;
  for (size_t i = 0; i < owned_.size(); ++i) {
    SyncTensor t;
    t.name = owned_names_[i];
    t.param = owned_[i].first, t.grad = owned_[i].second;
    t.counts_in_norm = owned_counts_in_norm_[i];
    EELLM_ASSIGN_OR_RETURN(t.role, param_role_of(t.name));
    const ParamRole& role = *t.role;
    t.reduced_again = role.owner == ParamOwner::kEmbedding && in_emb_group;
    for (int c = 0; c < layout_.vp && role.owner != ParamOwner::kEmbedding; ++c) {
      const ChunkLayout& cl = layout_.chunk(pp_rank_, c);
      const std::vector<int>& exits = chunks_[static_cast<size_t>(c)]->exits();
      bool mine = false;
      switch (role.owner) {
        case ParamOwner::kEmbedding:
          break;
        case ParamOwner::kPositionEmbedding:
          mine = cl.has_embedding;
          break;
        case ParamOwner::kFinalNorm:
        case ParamOwner::kHead:
          mine = cl.has_final_head;
          break;
        case ParamOwner::kLayer:
          mine = role.index >= cl.first_layer && role.index < cl.first_layer + cl.num_layers;
          break;
        case ParamOwner::kExit:
          mine = std::find(exits.begin(), exits.end(), role.index) != exits.end();
          break;
      }
      if (mine) t.group = c;
    }
    ts.push_back(std::move(t));
  }
  // Per-layer readiness: a layer's tensors, and per chunk the heads' (exits, final norm/head).
  head_sync_.assign(static_cast<size_t>(layout_.vp), {});
  layer_sync_.clear();
  for (size_t i = 0; i < ts.size(); ++i) {
    const ParamRole& role = *ts[i].role;
    if (ts[i].group < 0) continue;
    if (role.owner == ParamOwner::kLayer) {
      layer_sync_[role.index].push_back(i);
    } else if (role.owner == ParamOwner::kExit || role.owner == ParamOwner::kFinalNorm ||
               role.owner == ParamOwner::kHead) {
      head_sync_[static_cast<size_t>(ts[i].group)].push_back(i);
    }
  }
  GradSyncOptions o;
  o.distributed_optimizer = scenario_.parallel.use_distributed_optimizer;
  o.overlap = scenario_.parallel.overlap_grad_reduce;
  o.bucket_floats = static_cast<size_t>(std::max(0, scenario_.parallel.ddp_bucket_size));
  o.timeout_s = opt_.recv_timeout_s;
  EELLM_ASSIGN_OR_RETURN(grad_sync_, GradSync::create(std::move(ts), *comms_->data, *be_, o));
  chunk_last_backward_.assign(static_cast<size_t>(layout_.vp), -1);
  const auto& list = instructions();
  for (size_t i = 0; i < list.size(); ++i) {
    const InstrKind k = list[i].kind;
    if (k == InstrKind::kBackward || k == InstrKind::kBackwardInput || k == InstrKind::kBackwardWeight)
      chunk_last_backward_[static_cast<size_t>(list[i].chunk)] = static_cast<int>(i);
  }
  return grad_sync_.get();
}

Status PipelineRuntime::after_instruction(int index) {
  if (comms_->data->size() == 1 || !scenario_.parallel.overlap_grad_reduce) return Status::ok();
  EELLM_ASSIGN_OR_RETURN(GradSync * gs, grad_sync());
  for (size_t c = 0; c < chunk_last_backward_.size(); ++c)
    if (chunk_last_backward_[c] == index) EELLM_RETURN_IF_ERROR(gs->group_ready(static_cast<int>(c)));
  gs->poll();
  return Status::ok();
}

StatusOr<bool> PipelineRuntime::arm_layer_hook(int chunk, int index) {
  if (comms_->data->size() == 1 || !scenario_.parallel.overlap_grad_reduce) return false;
  EELLM_ASSIGN_OR_RETURN(GradSync * gs, grad_sync());
  if (chunk_last_backward_[static_cast<size_t>(chunk)] != index) return false;
  // The heads' gradients were accumulated at forward time: every forward that trains this chunk
  // precedes its backward, so they are final before the chunk's last backward step.
  EELLM_RETURN_IF_ERROR(gs->tensors_ready(head_sync_[static_cast<size_t>(chunk)]));
  hook_status_ = Status::ok();
  chunks_[static_cast<size_t>(chunk)]->set_layer_grads_hook([this, gs](int layer) {
    if (!hook_status_.is_ok()) return;
    auto it = layer_sync_.find(layer);
    if (it != layer_sync_.end()) hook_status_ = gs->tensors_ready(it->second);
    gs->poll();  // MPI progresses the buckets already posted only inside MPI calls
  });
  polled_sync_ = gs;
  return true;
}

Status PipelineRuntime::disarm_layer_hook(int chunk) {
  chunks_[static_cast<size_t>(chunk)]->set_layer_grads_hook(nullptr);
  polled_sync_ = nullptr;
  return hook_status_.with_context("posting a gradient bucket during the backward");
}

Tensor& PipelineRuntime::receive_buffer(const Instr& in) {
  auto [it, fresh] = (in.kind == InstrKind::kRecvGrad ? grad_in_ : act_in_).try_emplace({in.microbatch, in.chunk});
  if (fresh) {  // kept at this address until the step that consumes it (std::map nodes do not move)
    it->second.data.assign(activation_floats(), 0.0f);
    it->second.shape = {static_cast<int64_t>(activation_floats())};
  }
  return it->second;
}

Status PipelineRuntime::post_receives(size_t from) {
  if (!opt_.progress_polling) return Status::ok();
  const auto& list = instructions();
  for (const InstrKind k : {InstrKind::kRecvAct, InstrKind::kRecvGrad}) {
    int& posted = posted_recv_[k == InstrKind::kRecvGrad ? 1 : 0];
    if (posted >= static_cast<int>(from)) continue;  // still ahead of the rank
    for (size_t j = from; j < list.size(); ++j) {
      if (list[j].kind != k) continue;
      const Instr& in = list[j];
      const int t = tag(in.microbatch, k == InstrKind::kRecvGrad, in.chunk);
      EELLM_RETURN_IF_ERROR(
          comms_->pipeline->post_recv(receive_buffer(in).ptr(), activation_floats() * sizeof(float), in.peer, t));
      posted = static_cast<int>(j);
      break;
    }
  }
  return Status::ok();
}

void PipelineRuntime::progress() {
  if (opt_.progress_polling) comms_->pipeline->progress();
  if (polled_sync_) polled_sync_->poll();
}

Status PipelineRuntime::reduce_data_parallel() {
  EELLM_ASSIGN_OR_RETURN(GradSync * gs, grad_sync());
  EELLM_RETURN_IF_ERROR(gs->reduce());
  dp_timings_.clear();
  if (comms_->data->size() > 1)
    for (GradSync::BucketTiming t : gs->timings()) {
      if (t.post_ns >= 0) t.post_ns -= t_origin_ns_;
      if (t.done_ns >= 0) t.done_ns -= t_origin_ns_;
      dp_timings_.push_back(t);
    }
  return Status::ok();
}

Status PipelineRuntime::optimizer_step(int iteration, IterationResult& r) {
  // Tied wte copies count once (stage 0); DP replicas hold equal gradients after AR-DP.
  if (!trainers_) return Status::internal("OPT on a rank outside the optimizer group");
  EELLM_ASSIGN_OR_RETURN(GradSync * gs, grad_sync());
  EELLM_ASSIGN_OR_RETURN(GradSync::Step st,
                         gs->step({trainers_.get(), comms_->tensor.get()}, scenario_.training, iteration));
  r.grad_norm = st.grad_norm;
  r.lr = st.lr;
  be_->synchronize();  // updated parameters are read on the host next (checkpoints, tests)
  return Status::ok();
}

}  // namespace eellm::exec
