// NCCL implementation of the Communicator interface (exec/comm/comm.h): one process per GPU (device =
// launcher local rank, cuda_context.h), bootstrapped over an existing communicator (the MPI world):
// rank 0 creates the ncclUniqueId and broadcasts it through that communicator.
//
// Streams and ordering: every operation first makes its NCCL stream wait for the work queued so far
// on the process compute stream (an event), so it sees the backend's results without a host sync.
// Collectives and receives then block the calling thread until done (the interface is blocking),
// polling cudaStreamQuery and ncclCommGetAsyncError against the deadline; on expiry the NCCL
// communicators are aborted (ncclCommAbort) and a Status names the operation, peer and timeout.
// Communicators are non-blocking-mode NCCL communicators so initialisation and splits honour
// deadlines too.
//
// Point-to-point: send() copies the message into a staging device buffer (the caller may reuse its
// buffer at once) and returns; wait_sends()/pending_sends() track completion. Messages from the
// lower to the higher group rank and from higher to lower travel on two separate NCCL
// communicators and streams, so two ranks sending to each other before receiving cannot deadlock.
// NCCL has no tags: messages between a pair and direction must be received in the order sent (the
// runtime's schedules do so); `tag` is ignored. A send to oneself is a local device copy.
//
// Buffers may be device, managed or host memory: host buffers are staged through device memory.
// Thread-safety: one thread per communicator, like every Communicator.
#pragma once

#include <memory>
#include <string>

#include "exec/comm/comm.h"
#include "model/status.h"

namespace eellm::exec {

// Collective over `bootstrap` (every rank calls it). The bootstrap communicator must outlive the
// result (abort() forwards to it so the whole job ends).
StatusOr<std::unique_ptr<Communicator>> make_nccl_communicator(Communicator& bootstrap, const std::string& name,
                                                               double timeout_s);

}  // namespace eellm::exec
