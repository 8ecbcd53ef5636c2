// What a passthrough PCI function needs from the VFIO device behind it, whichever way the device
// is reached: a vfio-user server over a socket (VfioUserClient) or, later, the kernel's VFIO
// device fd. The region and IRQ vocabulary is VFIO's own (<linux/vfio.h> indexes and flags),
// which vfio-user reuses as is.
#pragma once

#include <linux/vfio.h>

#include <cstdint>
#include <optional>
#include <span>

#include "base/fd.h"
#include "base/result.h"
#include "devices/vfio/vfio_user_messages.h"

namespace ioasis::devices {

using VfioRegionInfo = vfio_user::RegionInfo;

class VfioDeviceTransport {
 public:
  virtual ~VfioDeviceTransport() = default;

  virtual Result<VfioRegionInfo> region_info(uint32_t index) = 0;
  virtual Result<vfio_irq_info> irq_info(uint32_t index) = 0;
  // Connects `eventfds` to vectors start.. of IRQ `index`; empty disconnects the whole index.
  virtual Result<void> set_irqs(uint32_t index, uint32_t start, std::span<const int> eventfds) = 0;
  // Unmasks vector 0 of a maskable index: INTx, which VFIO masks itself each time it fires.
  virtual Result<void> unmask_irq(uint32_t index) {
    (void)index;
    return Error(Errc::kUnsupported, "this VFIO transport cannot unmask interrupts");
  }
  // Has the device unmask vector 0 of `index` itself whenever `eventfd` is signalled
  // (VFIO_IRQ_SET_ACTION_UNMASK with an eventfd): given KVM's resample eventfd, a guest EOI
  // unmasks INTx without a trip through this process. kUnsupported where only unmask_irq() works.
  virtual Result<void> set_unmask_eventfd(uint32_t index, int eventfd) {
    (void)index, (void)eventfd;
    return Error(Errc::kUnsupported, "this VFIO transport takes no unmask eventfd");
  }
  virtual Result<void> region_read(uint32_t index, uint64_t offset, std::span<uint8_t> data) = 0;
  virtual Result<void> region_write(uint32_t index, uint64_t offset,
                                    std::span<const uint8_t> data) = 0;
  // Maps `size` bytes at `offset` of mmappable region `index` (inside one of its mmap areas) into
  // this process, shared with the device: what the guest then reads and writes there, the device
  // sees without a trip through us.
  virtual Result<MappedRegion> map_region(uint32_t index, uint64_t offset, uint64_t size) = 0;
  virtual Result<void> reset() = 0;
  // Set once the device can no longer be reached; the reason stays.
  virtual std::optional<Error> failure() const = 0;
};

}  // namespace ioasis::devices
