// The PIO and MMIO buses: vCPU exits are dispatched here by address. Devices are registered over
// a range and see offsets relative to its base. Lookups come from every vCPU thread at once;
// registration (BAR moves, hotplug) is rare, so a shared lock guards the map.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <shared_mutex>
#include <span>
#include <string>

#include "base/address.h"
#include "base/result.h"

namespace ioasis::devices {

class BusDevice {
 public:
  virtual ~BusDevice() = default;
  // `data.size()` is the access width (1, 2, 4 or 8; larger for string MMIO). Reads of
  // unimplemented registers fill `data` with what real hardware returns (usually all ones).
  virtual void read(uint64_t offset, std::span<uint8_t> data) = 0;
  virtual void write(uint64_t offset, std::span<const uint8_t> data) = 0;
};

class Bus {
 public:
  explicit Bus(std::string name) : name_(std::move(name)) {}

  // Fails with kAlreadyExists when [base, base+len) overlaps a registered range.
  Result<void> insert(std::shared_ptr<BusDevice> device, uint64_t base, uint64_t len);
  // Removes the range that starts at `base`.
  Result<void> remove(uint64_t base);

  // Dispatches an access; returns false when no device claims the address.
  bool read(uint64_t addr, std::span<uint8_t> data) const;
  bool write(uint64_t addr, std::span<const uint8_t> data) const;

 private:
  struct Range {
    uint64_t len;
    std::shared_ptr<BusDevice> device;
  };
  // Finds the device covering addr; returns it with the offset of addr inside its range.
  std::pair<std::shared_ptr<BusDevice>, uint64_t> find(uint64_t addr) const;

  std::string name_;
  mutable std::shared_mutex mu_;
  std::map<uint64_t, Range> ranges_;  // keyed by base
};

}  // namespace ioasis::devices
