// The backend of emulated devices: their DMA is translated in-process by a DmaView over the
// address space's own table, so there is nothing to mirror. It still declares an aperture and a
// page size, which lets a model of some device (or a test) narrow an address space.
#pragma once

#include "iommu/dma_backend.h"

namespace ioasis::iommu {

class SoftwareBackend final : public DmaBackend {
 public:
  explicit SoftwareBackend(Aperture aperture = {}) : aperture_(aperture) {}

  Aperture aperture(DeviceId) const override { return aperture_; }
  Result<void> attach(DeviceId, IoasId) override { return {}; }
  Result<void> detach(DeviceId, IoasId) override { return {}; }
  Result<void> map(IoasId, const DmaMapping&) override { return {}; }
  Result<void> unmap(IoasId, Iova, uint64_t) override { return {}; }

 private:
  Aperture aperture_;
};

}  // namespace ioasis::iommu
