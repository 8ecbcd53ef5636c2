// The devices that sit behind the virtio-iommu, by endpoint ID (virtio 1.2 section 5.13: for
// PCI, the endpoint ID is the requester ID, bus << 8 | devfn). The VM fills it while it builds
// devices; the virtio-iommu looks endpoints up to attach them and receives their DMA faults to
// turn into fault events; ACPI VIOT lists them.
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "base/result.h"
#include "iommu/dma_view.h"
#include "iommu/types.h"

namespace ioasis::devices::virtio {

class IommuEndpoints {
 public:
  using FaultHandler = std::function<void(uint32_t endpoint, const iommu::DmaFault& fault)>;

  // Fails with kAlreadyExists when the endpoint is taken.
  Result<void> add(uint32_t endpoint, iommu::DeviceId device);
  std::optional<iommu::DeviceId> find(uint32_t endpoint) const;
  // Sorted by endpoint ID.
  std::vector<uint32_t> endpoints() const;
  bool empty() const;

  // The virtio-iommu installs its handler; until then faults are logged. The handler runs on the
  // faulting device's thread (the control loop) with that device's transport locked, so it must
  // neither call back into this registry nor into the faulting device.
  void set_fault_handler(FaultHandler handler);
  void report_fault(uint32_t endpoint, const iommu::DmaFault& fault);

 private:
  mutable std::mutex mu_;
  std::map<uint32_t, iommu::DeviceId> devices_;
  FaultHandler handler_;
};

}  // namespace ioasis::devices::virtio
