// Shared state and setup of the MPI test binary: the world communicator (set by mpi_main.cpp) and
// RuntimeFixture, a PipelineRuntime on world() with the communicators it points at.
#pragma once

#include <memory>

#include "exec/comm/comm.h"
#include "exec/train/runtime.h"
#include "model/layout.h"

namespace eellm::exec::testing {
extern Communicator* g_world;
inline Communicator& world() {
  return *g_world;
}

// The runtime of a scenario on world() (tp × pp × dp from the scenario's layout). PipelineRuntime
// keeps a pointer to its Communicators, so they live here, at a stable address (the fixture is
// heap-allocated, neither copied nor moved) for as long as the runtime. Thread-safety: one thread.
class RuntimeFixture {
 public:
  static StatusOr<std::unique_ptr<RuntimeFixture>> create(const Scenario& s, const RuntimeOptions& options) {
    EELLM_ASSIGN_OR_RETURN(const Layout lay, derive_layout(s));
    std::unique_ptr<RuntimeFixture> f(new RuntimeFixture());
    EELLM_ASSIGN_OR_RETURN(f->comms_,
                           make_communicators(world(), {lay.tp, lay.pp, lay.dp}, embedding_group_ranks(s, lay)));
    EELLM_ASSIGN_OR_RETURN(f->rt_, PipelineRuntime::create(s, f->comms_, options));
    return f;
  }
  RuntimeFixture(const RuntimeFixture&) = delete;
  RuntimeFixture& operator=(const RuntimeFixture&) = delete;

  PipelineRuntime& rt() { return *rt_; }
  Communicators& comms() { return comms_; }
  const RankCoords& coords() const { return comms_.groups.coords; }

 private:
  RuntimeFixture() = default;
  Communicators comms_;  // declared before rt_: destroyed after it
  std::unique_ptr<PipelineRuntime> rt_;
};

}  // namespace eellm::exec::testing
