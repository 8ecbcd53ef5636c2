// Errors as values: every boundary where input is untrusted or the kernel can say no returns a
// Result<T>. An Error carries a code (mapped one-to-one onto gRPC status codes by the API) and a
// message a user can act on.
#pragma once

#include <cerrno>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace ioasis {

enum class Errc {
  kInvalidArgument,     // the caller's input is malformed or out of range
  kNotFound,            // a named object does not exist
  kAlreadyExists,       // creating something that is already there
  kFailedPrecondition,  // the object is in the wrong state for the request (busy, attached, ...)
  kResourceExhausted,   // a limit was hit (pinned bytes, IOVA space, memory slots)
  kPermissionDenied,    // isolation or access rules forbid the request
  kUnavailable,         // a peer is gone or stalled
  kUnsupported,         // valid request the host or device cannot do
  kIo,                  // the kernel or a file said no; see sys_errno
  kInternal,            // a bug: an invariant did not hold
};

const char* errc_name(Errc code);

class Error {
 public:
  Error(Errc code, std::string message, int sys_errno = 0)
      : code_(code), message_(std::move(message)), sys_errno_(sys_errno) {}

  // An error from a failed system call: `what` says what was attempted, errno says why.
  static Error from_errno(std::string what, int err = errno);

  Errc code() const { return code_; }
  const std::string& message() const { return message_; }
  int sys_errno() const { return sys_errno_; }

  // Prefixes the message with context, keeping code and errno: "loading kernel: file too short".
  Error& context(const std::string& where) {
    message_ = where + ": " + message_;
    return *this;
  }

 private:
  Errc code_;
  std::string message_;
  int sys_errno_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const& { return error_; }
  Error&& error() && { return std::move(error_); }

 private:
  Error error_{Errc::kInternal, ""};
  bool ok_ = true;
};

inline Result<void> ok() { return {}; }

}  // namespace ioasis

// Propagates an error out of the current function. The expression must yield a Result.
#define IOASIS_TRY(expr)                                                        \
  do {                                                                          \
    auto ioasis_try_result_ = (expr);                                           \
    if (!ioasis_try_result_.ok()) return std::move(ioasis_try_result_).error(); \
  } while (0)

// Declares `var` from a Result's value, or propagates its error.
#define IOASIS_ASSIGN_OR_RETURN(var, expr)                         \
  auto IOASIS_CONCAT_(ioasis_r_, __LINE__) = (expr);               \
  if (!IOASIS_CONCAT_(ioasis_r_, __LINE__).ok())                   \
    return std::move(IOASIS_CONCAT_(ioasis_r_, __LINE__)).error(); \
  var = std::move(IOASIS_CONCAT_(ioasis_r_, __LINE__)).value()

#define IOASIS_CONCAT_INNER_(a, b) a##b
#define IOASIS_CONCAT_(a, b) IOASIS_CONCAT_INNER_(a, b)
