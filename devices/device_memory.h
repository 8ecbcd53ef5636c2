// How a device puts memory it exports into the guest-physical map: a passthrough BAR that the
// device lets us mmap becomes guest memory, so guest loads and stores there reach the device
// with no VM exit. The VM implements this with KVM memory slots; tests with a recorder.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "base/address.h"
#include "base/result.h"

namespace ioasis::devices {

// One piece of host memory placed in the guest-physical map; destroying it takes it out again.
// The host memory must stay mapped for as long as this lives.
class GuestMapping {
 public:
  virtual ~GuestMapping() = default;
};

class DeviceMemoryMapper {
 public:
  virtual ~DeviceMemoryMapper() = default;
  // `gpa` and `host` are page-aligned and `host` a whole number of pages. Read-only memory traps
  // guest writes, which then reach the device the slow way.
  virtual Result<std::unique_ptr<GuestMapping>> map(Gpa gpa, std::span<uint8_t> host,
                                                    bool writable) = 0;
};

}  // namespace ioasis::devices
