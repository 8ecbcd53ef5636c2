// The IOASID manager: one IoasidContext per VM, the `/dev/ioasid` of the design. It owns the
// address spaces, their mappings and the pins behind them, and decides which device uses which
// address space. The isolation-group rule is enforced here and nowhere else.
//
// Semantics follow Linux iommufd so that users of either meet no surprise: unmapping a range that
// cuts a mapping fails and removes nothing, unmapping [0, UINT64_MAX) removes everything, fixed
// maps may not overlap, automatic IOVAs are aligned, avoid reserved ranges and stay in allowed
// ones, and attaching a device narrows the address space to what the device can reach.
//
// Thread safety: every method may be called from any thread; control operations are serialized
// by the context. Device DMA goes through DmaView (dma_view.h), which takes no context lock.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "iommu/dma_backend.h"
#include "iommu/types.h"

namespace ioasis::iommu {

class DmaView;

enum class IoasKind {
  kGuestRam,     // built by the VM: IOVA = GPA over all RAM
  kHostManaged,  // created and mapped by the operator through the API
  kGuestDomain,  // a virtio-iommu domain, mapped by the guest
};
const char* ioas_kind_name(IoasKind kind);

struct ContextOptions {
  // Most bytes of host memory that may be pinned at once (like RLIMIT_MEMLOCK).
  uint64_t pinned_limit = UINT64_MAX;
  // Ranges no address space may map, e.g. the MSI doorbell window.
  std::vector<IovaRange> reserved;
};

struct DeviceSpec {
  std::string name;
  // Absent for a device that shares its isolation with nobody (emulated devices).
  std::optional<GroupId> group;
  std::shared_ptr<DmaBackend> backend;
};

struct IoasInfo {
  IoasId id;
  IoasKind kind = IoasKind::kHostManaged;
  std::string name;
};

struct IoasStats {
  uint64_t mappings = 0;
  uint64_t mapped_bytes = 0;
  uint64_t pinned_bytes = 0;  // distinct host bytes behind this address space's mappings
  uint32_t attached_devices = 0;
};

struct ContextStats {
  uint32_t address_spaces = 0;
  uint32_t devices = 0;
  uint32_t attached_devices = 0;
  uint64_t mappings = 0;
  uint64_t mapped_bytes = 0;
  uint64_t pinned_bytes = 0;  // distinct host bytes over all address spaces
  uint64_t pinned_limit = 0;
};

class IoasidContext {
 public:
  explicit IoasidContext(ContextOptions options = {});
  ~IoasidContext();
  IoasidContext(const IoasidContext&) = delete;
  IoasidContext& operator=(const IoasidContext&) = delete;

  Result<IoasId> create_ioas(IoasKind kind, std::string name = "");
  // Fails with kFailedPrecondition while a device is attached; drops all mappings otherwise.
  Result<void> destroy_ioas(IoasId ioas);
  Result<IoasInfo> info(IoasId ioas) const;
  std::vector<IoasInfo> list() const;

  Result<DeviceId> join(DeviceSpec spec);
  // The device must be detached first.
  Result<void> leave(DeviceId device);
  Result<void> attach(DeviceId device, IoasId ioas);
  Result<void> detach(DeviceId device);
  // Moves an attached device to `ioas` without a window where it is detached. The attached
  // devices of its isolation group move with it, since the group may not be split.
  Result<void> replace(DeviceId device, IoasId ioas);
  std::optional<IoasId> attached_to(DeviceId device) const;

  // Maps `host` at `iova`, or at an IOVA the context picks when `iova` is empty.
  Result<Iova> map(IoasId ioas, std::optional<Iova> iova, const HostRange& host, Perm perm);
  // Returns the bytes unmapped. iova 0 with length UINT64_MAX unmaps everything.
  Result<uint64_t> unmap(IoasId ioas, Iova iova, uint64_t length);
  // Maps into `dst` the host pages that [src_iova, src_iova+length) of `src` maps, with the same
  // permissions; the pages are already pinned and are not counted again.
  Result<Iova> copy(IoasId src, Iova src_iova, IoasId dst, std::optional<Iova> dst_iova,
                    uint64_t length);

  // The IOVA ranges a fixed map may use: everything minus reserved ranges and outside attached
  // devices' apertures.
  Result<std::vector<IovaRange>> iova_ranges(IoasId ioas) const;
  // The granule every map must align to: the largest page size of the attached devices.
  Result<uint64_t> iova_alignment(IoasId ioas) const;
  // Restricts automatic IOVA allocation to `ranges` (empty lifts the restriction). Fails when a
  // range intersects a reserved one.
  Result<void> allow_iovas(IoasId ioas, std::vector<IovaRange> ranges);
  // Forbids mapping `range`. Fails when it intersects a mapping or an allowed range.
  Result<void> reserve_iovas(IoasId ioas, IovaRange range);

  Result<IoasStats> stats(IoasId ioas) const;
  ContextStats stats() const;

  // Up to `max` mappings of `ioas` starting at or after `from`, in IOVA order (for listings).
  Result<std::vector<DmaMapping>> mappings(IoasId ioas, Iova from, size_t max) const;
  // The devices attached to `ioas`, in attach order.
  Result<std::vector<DeviceId>> devices(IoasId ioas) const;

  // What `device` uses to reach memory through its address space. Each view has its own IOTLB
  // and is meant for one thread at a time; a device with several DMA threads takes one each.
  Result<std::unique_ptr<DmaView>> dma_view(DeviceId device);

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace ioasis::iommu
