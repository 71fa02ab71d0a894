#include "exec/train/preempt.h"

#include <csignal>
#include <filesystem>
#include <string>

#include "exec/io/checkpoint.h"

namespace eellm::exec {
namespace {

volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_preempt_signal(int sig) {
  g_signal = sig;
}

}  // namespace

void install_preempt_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_preempt_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool preempt_requested() {
  return g_signal != 0;
}
int preempt_signal() {
  return static_cast<int>(g_signal);
}
void clear_preempt_request() {
  g_signal = 0;
}

StatusOr<bool> agree_on_preempt(Communicator& world, double timeout_s) {
  double any = preempt_requested() ? 1.0 : 0.0;
  EELLM_RETURN_IF_ERROR(world.all_reduce_sum(&any, 1, timeout_s));
  return any > 0;
}

Status preempted_status(int iteration, const std::string& save_dir) {
  const int sig = preempt_signal();
  const std::string name = sig == SIGUSR1 ? "SIGUSR1" : sig == SIGTERM ? "SIGTERM" : "a signal";
  std::string msg = "stopped by " + name + " after iteration " + std::to_string(iteration) + "; ";
  if (save_dir.empty())
    msg += "no checkpoint written (no --save directory)";
  else
    msg += "checkpoint " + save_dir + "/" + checkpoint_iter_name(iteration) +
           " written (continue with --resume-latest " + save_dir + ")";
  return Status::cancelled(msg);
}

StatusOr<std::string> checkpoint_to_resume(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::exists(std::filesystem::path(dir) / "latest", ec)) return std::string();
  auto resolved = resolve_checkpoint_dir(dir);
  if (!resolved.is_ok()) return resolved.status().with_context("--resume-latest " + dir);
  return dir;
}

}  // namespace eellm::exec
