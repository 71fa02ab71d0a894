// The MPI implementation of Communicator (exec/comm/comm.h) and the RAII owner of MPI itself.
// Only this folder includes <mpi.h>; it is compiled when CMake finds MPI (EELLM_HAVE_MPI).
//
// Every MPI call goes through EELLM_MPI_CHECK (mpi_comm.cpp), which turns a failure into a Status
// naming file, line, the call and MPI's error string; communicators use MPI_ERRORS_RETURN so
// errors come back instead of aborting. Blocking operations are posted non-blocking and polled
// against a deadline, so a dead peer becomes a timeout error, never a hang.
// Thread-safety: MPI is initialised with MPI_THREAD_FUNNELED; use from the main thread only.
#pragma once

#include <memory>

#include "exec/comm/comm.h"
#include "model/status.h"

namespace eellm::exec {

// True when this process was started by a launcher (mpirun/srun): the Open MPI, MPICH/PMI or
// Slurm environment variables are set. A plain `eellm train` then skips MPI entirely.
bool launched_by_mpi();

// Owns MPI_Init_thread / MPI_Finalize (once per process) and the world communicator.
class MpiEnvironment {
 public:
  static StatusOr<std::unique_ptr<MpiEnvironment>> init(int* argc, char*** argv);
  ~MpiEnvironment();
  MpiEnvironment(const MpiEnvironment&) = delete;
  MpiEnvironment& operator=(const MpiEnvironment&) = delete;

  Communicator& world() { return *world_; }

 private:
  MpiEnvironment() = default;
  std::unique_ptr<Communicator> world_;
};

}  // namespace eellm::exec
