// Kernel-side doorbells: a guest write to an MMIO address signals an eventfd without an exit to
// userspace (KVM_IOEVENTFD). Declared here so devices stay free of KVM; the VM implements it.
#pragma once

#include <cstdint>
#include <memory>

#include "base/result.h"

namespace ioasis::devices {

// Unregisters its doorbell when destroyed.
class IoEventRegistration {
 public:
  virtual ~IoEventRegistration() = default;
};

class IoEvents {
 public:
  virtual ~IoEvents() = default;
  // A guest write of exactly `len` bytes to MMIO address `addr` signals `eventfd` (any value
  // written). The eventfd must outlive the registration.
  virtual Result<std::unique_ptr<IoEventRegistration>> add_mmio(int eventfd, uint64_t addr,
                                                                uint32_t len) = 0;
};

}  // namespace ioasis::devices
