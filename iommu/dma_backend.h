// The seam between an address space and the thing that actually does DMA. As small as
// cloud-hypervisor's ExternalDmaMapping: map and unmap, plus hooks when a device starts or stops
// using an address space. The IoasidContext owns the mappings, the pins and the rules; a backend
// only mirrors each address space into its world (kernel page tables, a peer's IOTLB, nothing at
// all for in-process translation).
#pragma once

#include "base/result.h"
#include "iommu/types.h"

namespace ioasis::iommu {

// One mapping as a backend receives it. `host` keeps the fd and offset of the memory when it has
// one, for backends that hand memory to another process.
struct DmaMapping {
  Iova iova;
  HostRange host;
  Perm perm = Perm::kNone;
};

class DmaBackend {
 public:
  virtual ~DmaBackend() = default;

  // The window and granule this backend gives `device`. Attaching the device narrows the
  // address space to it.
  virtual Aperture aperture(DeviceId device) const = 0;

  // `device` starts using `ioas`. When the device is attached elsewhere already, this is a
  // replace: the backend moves it, atomically where the hardware allows. When it is the first of
  // this backend's devices on `ioas`, the context replays the existing mappings with map() right
  // after. A backend that has no device left on some address space drops its mirror of it.
  virtual Result<void> attach(DeviceId device, IoasId ioas) = 0;
  virtual Result<void> detach(DeviceId device, IoasId ioas) = 0;

  // Mirrors one mapping. Called only for address spaces with at least one of this backend's
  // devices attached.
  virtual Result<void> map(IoasId ioas, const DmaMapping& mapping) = 0;
  // Removes every mirrored mapping inside [iova, iova+length); the context only asks for ranges
  // that cut no mapping in two. iova 0 with length UINT64_MAX means everything.
  virtual Result<void> unmap(IoasId ioas, Iova iova, uint64_t length) = 0;

  // Optional: mirror a copy between two address spaces that both have this backend, sharing
  // pages the backend already holds (iommufd IOAS_COPY). kUnsupported makes the context fall
  // back to map().
  virtual Result<void> copy(IoasId /*src*/, Iova /*src_iova*/, IoasId /*dst*/,
                            const DmaMapping& /*dst_mapping*/) {
    return Error(Errc::kUnsupported, "backend has no copy");
  }
};

}  // namespace ioasis::iommu
