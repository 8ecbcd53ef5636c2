// KVM memory slots for device memory placed in the guest map (mmapped passthrough BARs). RAM
// takes the low slot numbers; these come from a range above it and go back when the mapping is
// destroyed, so a guest that moves BARs around does not run out.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "devices/device_memory.h"
#include "vmm/kvm/kvm.h"

namespace ioasis {

class KvmDeviceSlots final : public devices::DeviceMemoryMapper,
                             public std::enable_shared_from_this<KvmDeviceSlots> {
 public:
  // Slots [first, first + count) are ours. `vm` must outlive every mapping handed out.
  static std::shared_ptr<KvmDeviceSlots> create(kvm::Vm& vm, uint32_t first, uint32_t count);

  Result<std::unique_ptr<devices::GuestMapping>> map(Gpa gpa, std::span<uint8_t> host,
                                                     bool writable) override;
  size_t in_use() const;

 private:
  class Slot;
  KvmDeviceSlots(kvm::Vm& vm, uint32_t first, uint32_t count);
  void release(uint32_t slot);

  kvm::Vm& vm_;
  mutable std::mutex mu_;
  std::vector<uint32_t> free_;  // handed out from the back
  size_t count_;
};

}  // namespace ioasis
