// Shared state of the MPI test binary: the world communicator (set by mpi_main.cpp).
#pragma once

#include "exec/comm.h"

namespace eellm::exec::testing {
extern Communicator* g_world;
inline Communicator& world() { return *g_world; }
}  // namespace eellm::exec::testing
