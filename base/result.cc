#include "base/result.h"

#include <cstring>

namespace ioasis {

const char* errc_name(Errc code) {
  switch (code) {
    case Errc::kInvalidArgument:
      return "invalid argument";
    case Errc::kNotFound:
      return "not found";
    case Errc::kAlreadyExists:
      return "already exists";
    case Errc::kFailedPrecondition:
      return "failed precondition";
    case Errc::kResourceExhausted:
      return "resource exhausted";
    case Errc::kPermissionDenied:
      return "permission denied";
    case Errc::kUnavailable:
      return "unavailable";
    case Errc::kUnsupported:
      return "unsupported";
    case Errc::kIo:
      return "i/o error";
    case Errc::kInternal:
      return "internal error";
  }
  return "unknown error";
}

Error Error::from_errno(std::string what, int err) {
  return Error(Errc::kIo, what + ": " + std::strerror(err), err);
}

}  // namespace ioasis
