// guarded_read: runs a file reader; whatever it throws becomes an error Status, so that no file makes
// the GUI die (the readers return Status for what they know; this is the net under them). Used by
// every loading path of the GUI: scenarios, traces, and the form's cluster profiles.
#pragma once

#include <exception>
#include <string>

#include "model/status.h"

namespace eellm::gui {

template <typename F>
auto guarded_read(F&& read) -> decltype(read()) {
  try {
    return read();
  } catch (const std::exception& e) {
    return Status::internal(std::string("unexpected error while reading: ") + e.what());
  } catch (...) {
    return Status::internal("unexpected error while reading");
  }
}

}  // namespace eellm::gui
