// Status and StatusOr: errors a user can cause (bad scenario, missing file, corrupt checkpoint).
// Invariants only a bug can break use assert() instead. Value types; not thread-safe to share
// mutable instances, safe to copy across threads.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace eellm {

// Values are stable (exec/io/dist_checkpoint.cpp broadcasts them as integers): append new codes.
// kCancelled: the caller asked a long operation to stop (e.g. PlanOptions::cancelled); not an error
// of the input, so front ends test the code and treat it apart (GUI: "cancelled", CLI: exit 130).
enum class StatusCode {
  kOk,
  kInvalidArgument,
  kNotFound,
  kCorruption,
  kIOError,
  kFailedPrecondition,
  kInternal,
  kCancelled
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status ok() { return Status(); }
  static Status invalid_argument(std::string msg) { return Status(StatusCode::kInvalidArgument, std::move(msg)); }
  static Status not_found(std::string msg) { return Status(StatusCode::kNotFound, std::move(msg)); }
  static Status corruption(std::string msg) { return Status(StatusCode::kCorruption, std::move(msg)); }
  static Status io_error(std::string msg) { return Status(StatusCode::kIOError, std::move(msg)); }
  static Status failed_precondition(std::string msg) { return Status(StatusCode::kFailedPrecondition, std::move(msg)); }
  static Status internal(std::string msg) { return Status(StatusCode::kInternal, std::move(msg)); }
  static Status cancelled(std::string msg) { return Status(StatusCode::kCancelled, std::move(msg)); }

  bool is_ok() const { return code_ == StatusCode::kOk; }
  bool is_cancelled() const { return code_ == StatusCode::kCancelled; }
  explicit operator bool() const { return is_ok(); }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "invalid argument: model.num_layers (0) must be positive"
  std::string to_string() const;

  // Prefixes the message with context ("scenarios/x.yaml: ...").
  Status with_context(const std::string& context) const {
    if (is_ok()) return *this;
    return Status(code_, context + ": " + message_);
  }

 private:
  Status(StatusCode code, std::string msg) : code_(code), message_(std::move(msg)) {}
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

const char* status_code_name(StatusCode code);

inline std::string Status::to_string() const {
  if (is_ok()) return "ok";
  return std::string(status_code_name(code_)) + ": " + message_;
}

inline const char* status_code_name(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "ok";
    case StatusCode::kInvalidArgument:
      return "invalid argument";
    case StatusCode::kNotFound:
      return "not found";
    case StatusCode::kCorruption:
      return "corruption";
    case StatusCode::kIOError:
      return "I/O error";
    case StatusCode::kFailedPrecondition:
      return "failed precondition";
    case StatusCode::kInternal:
      return "internal error";
    case StatusCode::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

// Either a value or a non-ok Status.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(Status status) : status_(std::move(status)) { assert(!status_.is_ok()); }  // NOLINT
  StatusOr(T value) : value_(std::move(value)) {}                                     // NOLINT

  bool is_ok() const { return status_.is_ok(); }
  explicit operator bool() const { return is_ok(); }
  const Status& status() const { return status_; }
  const T& value() const& {
    assert(is_ok());
    return *value_;
  }
  T& value() & {
    assert(is_ok());
    return *value_;
  }
  T&& value() && {
    assert(is_ok());
    return std::move(*value_);
  }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace eellm

#define EELLM_RETURN_IF_ERROR(expr) \
  do {                              \
    ::eellm::Status _st = (expr);   \
    if (!_st.is_ok()) return _st;   \
  } while (0)

#define EELLM_CONCAT_INNER(a, b) a##b
#define EELLM_CONCAT(a, b) EELLM_CONCAT_INNER(a, b)
#define EELLM_ASSIGN_OR_RETURN(lhs, expr) EELLM_ASSIGN_OR_RETURN_IMPL(EELLM_CONCAT(_sor_, __LINE__), lhs, expr)
#define EELLM_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.is_ok()) return tmp.status();            \
  lhs = std::move(tmp).value()
