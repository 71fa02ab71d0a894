// `eellm compare-trace predicted.json measured.json`: the simulator's prediction against a measured
// run (`eellm train --trace` under mpirun): iteration-time error and error per op kind
// (sim/timeline.h compare()). Both files are Chrome traces written by sim/trace.
#include <iostream>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "sim/timeline.h"
#include "sim/trace.h"

namespace eellm::cli {

void register_compare_trace(CLI::App& app) {
  struct Options {
    std::string predicted, measured;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("compare-trace",
                                     "Compare a predicted trace with a measured one (iteration time, per op kind)");
  cmd->add_option("predicted", o->predicted, "Trace from `eellm simulate --trace`")->required();
  cmd->add_option("measured", o->measured, "Trace from `mpirun -np N eellm train --trace`")->required();
  cmd->callback([o] {
    auto p = read_trace(o->predicted);
    if (!p.is_ok()) {
      finish("compare-trace", p.status());
      return;
    }
    auto m = read_trace(o->measured);
    if (!m.is_ok()) {
      finish("compare-trace", m.status());
      return;
    }
    if (p->num_ranks != m->num_ranks)
      std::cerr << "eellm compare-trace: warning: " << p->num_ranks << " pipeline ranks predicted, " << m->num_ranks
                << " measured\n";
    std::cout << "predicted: " << o->predicted << "\nmeasured:  " << o->measured << "\n" << compare(*p, *m).to_string();
  });
}

}  // namespace eellm::cli
