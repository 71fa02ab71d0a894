// eellm: plan, simulate and run early-exit LLMs under 3D parallelism.
#include <exception>
#include <iostream>

#include "cli/commands.h"

namespace eellm::cli {
namespace {
struct Failure {
  std::string command;
  Status status;
};
Failure& failure() {
  static Failure f;
  return f;
}
}  // namespace

int& exit_code() {
  static int code = 0;
  return code;
}

void finish(const std::string& command, const Status& st) {
  if (st.is_ok() || !failure().status.is_ok()) return;  // the first failure is the one reported
  failure() = {command, st};
}
}  // namespace eellm::cli

namespace eellm::cli {
// --help shows every default, except where there is none to show: a required option's, an empty list's.
void tidy_help_defaults(CLI::App& app) {
  for (CLI::Option* o : app.get_options())
    if (o->get_required() || o->get_default_str() == "[]") o->default_str("");
  for (CLI::App* sub : app.get_subcommands({})) tidy_help_defaults(*sub);
}
}  // namespace eellm::cli

int main(int argc, char** argv) {
  CLI::App app{"eellm: plan, simulate and run early-exit LLMs under 3D parallelism"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "eellm 0.1.0");
  app.option_defaults()->always_capture_default();  // every --help shows the defaults (subcommands inherit it)
  // Plan on the desktop, what-if, interop and device models; then execution and its checks.
  eellm::cli::register_describe(app);
  eellm::cli::register_simulate(app);
  eellm::cli::register_plan(app);
  eellm::cli::register_sweep(app);
  eellm::cli::register_compare(app);
  eellm::cli::register_convert(app);
  eellm::cli::register_fit(app);
  eellm::cli::register_train(app);
  eellm::cli::register_launch(app);
  eellm::cli::register_eval(app);
  eellm::cli::register_generate(app);
  eellm::cli::register_serve(app);
  eellm::cli::register_data(app);
  eellm::cli::register_compare_trace(app);
  eellm::cli::register_calibrate(app);
  eellm::cli::register_fidelity(app);
  eellm::cli::tidy_help_defaults(app);
  // No exception ends the process unreported: whatever a subcommand (or a reader under it) throws
  // becomes "error: <what>" and exit 1.
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  } catch (...) {
    std::cerr << "error: an unknown exception\n";
    return 1;
  }
  const auto& [command, status] = eellm::cli::failure();
  if (!status.is_ok()) {
    std::cerr << "eellm " << command << ": " << status.to_string() << "\n";
    return status.is_cancelled() ? 130 : 1;
  }
  return eellm::cli::exit_code();
}
