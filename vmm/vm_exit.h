// Why a VM stopped, and the latch that records the first reason. Any thread (a vCPU, a device, the
// signal handler on the control loop) may ask the VM to stop; only the first request counts.
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <string>

namespace ioasis {

struct VmExit {
  enum class Kind { kPowerOff, kReset, kDebugExit, kSignal, kVcpuError, kShutdownRequest };
  Kind kind;
  int code = 0;        // debug-exit value or signal number
  std::string detail;  // what a user reads in the log

  // The process exit status: the debug-exit value as written, 0 for power-off, reset or an API
  // shutdown, 128 + signal, 1 for a vCPU error.
  int exit_status() const;
};

class ExitLatch {
 public:
  // Called once, with the first exit, from the thread that requested it.
  explicit ExitLatch(std::function<void(const VmExit&)> on_first)
      : on_first_(std::move(on_first)) {}

  // Returns true when this call was the first request.
  bool request(VmExit exit);
  std::optional<VmExit> get() const;
  bool requested() const;

 private:
  std::function<void(const VmExit&)> on_first_;
  mutable std::mutex mu_;
  std::optional<VmExit> exit_;
};

}  // namespace ioasis
