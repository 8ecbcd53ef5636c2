#include "vmm/device_slots.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace ioasis {

class KvmDeviceSlots::Slot final : public devices::GuestMapping {
 public:
  Slot(std::shared_ptr<KvmDeviceSlots> owner, uint32_t slot)
      : owner_(std::move(owner)), slot_(slot) {}
  ~Slot() override { owner_->release(slot_); }

 private:
  std::shared_ptr<KvmDeviceSlots> owner_;
  uint32_t slot_;
};

std::shared_ptr<KvmDeviceSlots> KvmDeviceSlots::create(kvm::Vm& vm, uint32_t first,
                                                       uint32_t count) {
  return std::shared_ptr<KvmDeviceSlots>(new KvmDeviceSlots(vm, first, count));
}

KvmDeviceSlots::KvmDeviceSlots(kvm::Vm& vm, uint32_t first, uint32_t count)
    : vm_(vm), count_(count) {
  for (uint32_t i = count; i > 0; --i) free_.push_back(first + i - 1);
}

Result<std::unique_ptr<devices::GuestMapping>> KvmDeviceSlots::map(Gpa gpa, std::span<uint8_t> host,
                                                                   bool writable) {
  std::lock_guard lock(mu_);
  if (free_.empty()) {
    return Error(Errc::kResourceExhausted,
                 fmt::format("all {} device memory slots are in use", count_));
  }
  uint32_t slot = free_.back();
  kvm::MemorySlot s{slot, gpa, host.size(), Hva(reinterpret_cast<uint64_t>(host.data())),
                    !writable};
  IOASIS_TRY(vm_.set_memory_slot(s));
  free_.pop_back();
  spdlog::debug("device memory at GPA {:#x}+{:#x} in KVM slot {}", gpa.value, host.size(), slot);
  return std::unique_ptr<devices::GuestMapping>(new Slot(shared_from_this(), slot));
}

void KvmDeviceSlots::release(uint32_t slot) {
  std::lock_guard lock(mu_);
  if (auto r = vm_.remove_memory_slot(slot); !r) {
    // The slot stays taken: reusing it could alias memory still in the guest map.
    spdlog::error("removing device memory slot {}: {}", slot, r.error().message());
    return;
  }
  free_.push_back(slot);
}

size_t KvmDeviceSlots::in_use() const {
  std::lock_guard lock(mu_);
  return count_ - free_.size();
}

}  // namespace ioasis
