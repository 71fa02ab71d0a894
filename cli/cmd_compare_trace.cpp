// `eellm compare-trace predicted.json measured.json`: the simulator's prediction against a measured
// run (`eellm train --trace` under mpirun): iteration-time error and error per op kind
// (sim/timeline.h compare()). Both files are Chrome traces written by sim/trace.
#include <iostream>
#include <memory>
#include <string>
#include <tuple>

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
    // An empty side would compare as "0 measured": say which one has nothing to compare.
    for (const auto& [what, path, t] :
         {std::tuple{"predicted", &o->predicted, &*p}, std::tuple{"measured", &o->measured, &*m}})
      if (t->num_ranks == 0 || t->events.empty()) {
        finish("compare-trace", Status::invalid_argument("the " + std::string(what) + " trace " + *path +
                                                         " has no ranks with slices (no ph:\"X\" events)"));
        return;
      }
    if (p->num_ranks != m->num_ranks)
      std::cerr << "eellm compare-trace: warning: " << p->num_ranks << " pipeline ranks predicted, " << m->num_ranks
                << " measured\n";
    std::cout << "predicted: " << o->predicted << "\nmeasured:  " << o->measured << "\n" << compare(*p, *m).to_string();
  });
}

}  // namespace eellm::cli
