// Internal: the state behind IoasidContext, shared by the files that implement it
// (ioasid_context.cc: address spaces and devices; ioas_mapping.cc: map, unmap, copy, IOVA ranges).
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <span>
#include <vector>

#include "iommu/ioas_table.h"
#include "iommu/ioasid_context.h"
#include "iommu/pin_tracker.h"

namespace ioasis::iommu::internal {

struct Reserved {
  IovaRange range;
  std::optional<DeviceId> owner;  // set for the parts outside a device's aperture
};

struct Ioas {
  IoasInfo info;
  std::shared_ptr<IoasTable> table = std::make_shared<IoasTable>();
  std::vector<Reserved> reserved;
  std::vector<IovaRange> allowed;  // empty: automatic allocation may use any free IOVA
  std::vector<DeviceId> devices;
  // How many attached devices each backend has here; a backend mirrors this address space
  // while its count is non-zero.
  std::map<DmaBackend*, uint32_t> backends;
  uint64_t mapped_bytes = 0;
  uint64_t alloc_hint = 0;  // where the last automatic allocation ended
};

// One mapping about to be installed, with the pages it pins and, for a copy, where it came from.
struct Piece {
  DmaMapping mapping;
  uint32_t pin_domain = 0;
  Iova src_iova;
};

struct Device {
  DeviceId id;
  std::string name;
  GroupId group;
  bool private_group = false;
  std::shared_ptr<DmaBackend> backend;
  std::optional<IoasId> ioas;
  Aperture aperture;  // as the backend reported it at attach time
  std::shared_ptr<DeviceSlot> slot = std::make_shared<DeviceSlot>();
};

}  // namespace ioasis::iommu::internal

namespace ioasis::iommu {

struct IoasidContext::State {
  mutable std::mutex mu;
  ContextOptions options;
  std::map<uint32_t, internal::Ioas> ioas;
  std::map<uint32_t, internal::Device> devices;
  uint32_t next_ioas = 1;
  uint32_t next_device = 1;
  // Private groups are numbered from the top so they never meet a host's iommu_group numbers.
  uint64_t next_private_group = uint64_t{1} << 63;
  internal::PinTracker pins;
  std::map<std::pair<dev_t, ino_t>, uint32_t> pin_domains;
  uint32_t next_pin_domain = 1;

  Result<internal::Ioas*> find_ioas(IoasId id);
  Result<const internal::Ioas*> find_ioas(IoasId id) const;
  Result<internal::Device*> find_device(DeviceId id);

  uint64_t alignment(const internal::Ioas& x) const;
  Result<internal::PinSpan> pin_span(const HostRange& host);

  // Makes backend `b` mirror `x` for `dev`: attach, then replay the mappings when `b` is new to
  // `x`. Undoes the attach when the replay fails.
  Result<void> backend_join(internal::Ioas& x, internal::Device& dev);

  // Picks the IOVA for a new mapping: checks a fixed one, or allocates one.
  Result<uint64_t> place(internal::Ioas& x, std::optional<Iova> iova, uint64_t length,
                         uint64_t hva);
  // Checks the pin limit, mirrors `pieces` into every backend of `x` (through copy() from
  // `copy_src` where a backend has both), then publishes and pins them. All or nothing.
  Result<void> install(internal::Ioas& x, std::span<const internal::Piece> pieces,
                       const internal::Ioas* copy_src);
};

namespace internal {
std::string describe(const Device& d);
std::string describe(IoasId id);
// The pages a mapping holds, in the key space chosen when it was made.
PinSpan pin_span_of(const MapEntry& e);
// `ranges` minus `holes`, sorted.
std::vector<IovaRange> subtract(std::vector<IovaRange> ranges, const std::vector<Reserved>& holes);
}  // namespace internal

}  // namespace ioasis::iommu
