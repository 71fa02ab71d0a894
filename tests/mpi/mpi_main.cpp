// main() of eellm_mpi_tests: initialises MPI once, hands the world communicator to the tests and
// keeps GoogleTest's console output on rank 0 only (every rank still runs every test and returns
// its own exit code, so mpirun fails when any rank fails).
#include <gtest/gtest.h>

#include <cstdio>

#include "exec/comm/mpi/mpi_comm.h"
#include "tests/mpi/mpi_test_util.h"

namespace eellm::exec::testing {
Communicator* g_world = nullptr;
}

namespace {
// Non-root ranks print only their failures, prefixed with the rank.
class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (!r.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: %s\n", rank_, r.file_name() ? r.file_name() : "?", r.line_number(),
                 r.summary());
  }

 private:
  int rank_;
};
}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  auto env = eellm::exec::MpiEnvironment::init(&argc, &argv);
  if (!env.is_ok()) {
    std::fprintf(stderr, "%s\n", env.status().to_string().c_str());
    return 2;
  }
  eellm::exec::testing::g_world = &(*env)->world();
  if ((*env)->world().rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new FailurePrinter((*env)->world().rank()));
  }
  const int rc = RUN_ALL_TESTS();
  if (rc != 0) std::fprintf(stderr, "eellm_mpi_tests: rank %d failed\n", (*env)->world().rank());
  return rc;
}
