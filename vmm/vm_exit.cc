#include "vmm/vm_exit.h"

namespace ioasis {

int VmExit::exit_status() const {
  switch (kind) {
    case Kind::kDebugExit:
      return code;
    case Kind::kSignal:
      return 128 + code;
    case Kind::kVcpuError:
      return 1;
    case Kind::kPowerOff:
    case Kind::kReset:
    case Kind::kShutdownRequest:
      return 0;
  }
  return 1;
}

bool ExitLatch::request(VmExit exit) {
  {
    std::lock_guard lock(mu_);
    if (exit_) return false;
    exit_ = exit;
  }
  if (on_first_) on_first_(exit);
  return true;
}

std::optional<VmExit> ExitLatch::get() const {
  std::lock_guard lock(mu_);
  return exit_;
}

bool ExitLatch::requested() const {
  std::lock_guard lock(mu_);
  return exit_.has_value();
}

}  // namespace ioasis
