// The virtio-iommu state machine (virtio 1.2 section 5.13), independent of any transport: it
// takes a request as untrusted bytes and answers with the bytes to write back.
//
// Domains live in the IOASID manager: one guest domain is one Ioas of kind kGuestDomain, so
// endpoints the guest puts in one domain share one address space, and a domain's Ioas is
// destroyed with its last endpoint. Endpoints are devices that joined the same IoasidContext.
// An endpoint in bypass mode is attached to the VM's guest-ram Ioas (IOVA = GPA); an endpoint
// neither attached nor in bypass is detached from every address space, so its DMA faults.
//
// Thread safety: every method may be called from any thread; the engine serializes them.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <vector>

#include "base/address.h"
#include "base/result.h"
#include "devices/virtio/iommu_protocol.h"
#include "devices/virtio/iommu_request.h"
#include "iommu/dma_view.h"
#include "iommu/ioasid_context.h"

namespace ioasis::devices::virtio_iommu {

// One contiguous piece of guest RAM and the host memory behind it.
struct RamSlice {
  Gpa gpa;
  iommu::HostRange host;  // host.length is the size of the slice
};

// Where MAP requests find the host memory behind a guest-physical range.
class GuestRamMap {
 public:
  explicit GuestRamMap(std::vector<RamSlice> slices) : slices_(std::move(slices)) {}
  // The host memory behind [gpa, gpa+length) when it lies inside one slice.
  std::optional<iommu::HostRange> resolve(Gpa gpa, uint64_t length) const;

 private:
  std::vector<RamSlice> slices_;
};

struct EngineOptions {
  // 4 KiB granule; 2 MiB mappings are handled efficiently.
  uint64_t page_size_mask = (uint64_t{1} << 12) | (uint64_t{1} << 21);
  iommu::IovaRange input_range{Iova(0), Iova((uint64_t{1} << 48) - 1)};
  uint32_t domain_start = 0;
  uint32_t domain_end = 0xffff;
  uint32_t probe_size = 512;
  // The bypass field after a system reset. QEMU also starts in bypass so that a guest without
  // a virtio-iommu driver keeps working DMA.
  bool bypass = true;
  // The x86 MSI doorbell, reported as a RESV_MEM MSI region and never mappable.
  iommu::IovaRange msi_window{Iova(0xfee00000), Iova(0xfeefffff)};
  // Fault events waiting for an event queue buffer; more are dropped and counted.
  size_t fault_backlog = 64;
};

class IommuEngine {
 public:
  IommuEngine(iommu::IoasidContext& ctx, iommu::IoasId guest_ram, GuestRamMap ram,
              EngineOptions options = {});
  // Detaches the endpoints it manages and destroys its domains.
  ~IommuEngine();
  IommuEngine(const IommuEngine&) = delete;
  IommuEngine& operator=(const IommuEngine&) = delete;

  // Puts `device` behind the IOMMU as `endpoint` (its BDF on PCI) and gives it the attachment
  // an unattached endpoint has now: guest RAM in bypass mode, nothing otherwise.
  Result<void> add_endpoint(uint32_t endpoint, iommu::DeviceId device);

  // Feature bits the device offers, VERSION_1 included.
  uint64_t device_features() const;
  // Feature bits the driver accepted; only those change request handling.
  void set_driver_features(uint64_t features);
  Config config() const;
  // A driver write of the bypass config byte; ignored unless BYPASS_CONFIG was negotiated.
  void write_bypass(uint8_t value);

  // Handles one request queue buffer. Nothing means: write nothing, used length 0.
  std::optional<Reply> handle(std::span<const uint8_t> readable, size_t writable);

  // Device reset: every endpoint leaves its domain and every domain disappears. The bypass
  // field keeps its value, as the spec asks.
  void reset();

  // A DMA of an endpoint failed to translate. Queues a fault event for the event queue.
  void report_fault(uint32_t endpoint, const iommu::DmaFault& fault);
  void report_fault(iommu::DeviceId device, const iommu::DmaFault& fault);
  // The oldest queued fault event, for the event queue to deliver.
  std::optional<FaultEvent> next_fault();
  bool has_faults() const;
  // Called after a fault event was queued, outside the engine's lock.
  void set_fault_notifier(std::function<void()> notify);
  uint64_t dropped_faults() const;

  // Inspection for tests and statistics.
  std::optional<iommu::IoasId> domain_ioas(uint32_t domain) const;
  size_t domain_count() const;

 private:
  struct Endpoint {
    iommu::DeviceId device;
    std::optional<uint32_t> domain;
  };
  struct Domain {
    iommu::IoasId ioas;   // guest_ram_ for a bypass domain, which owns no address space
    bool bypass = false;  // created with ATTACH_F_BYPASS
    std::set<uint32_t> endpoints;
  };

  uint8_t attach(const AttachRequest& req);
  uint8_t detach(const DetachRequest& req);
  uint8_t map(const MapRequest& req);
  uint8_t unmap(const UnmapRequest& req);
  Reply probe(const ProbeRequest& req, size_t tail_offset);

  bool in_domain_range(uint32_t domain) const;
  bool in_input_range(uint64_t first, uint64_t last) const;
  bool bypass_mode() const;
  // Points `device` at `ioas`, whether or not it is attached somewhere now.
  Result<void> move_to(iommu::DeviceId device, iommu::IoasId ioas);
  // Gives an endpoint outside any domain the address space bypass mode says it has.
  Result<void> settle_unattached(const Endpoint& ep);
  void leave_domain(uint32_t endpoint, Endpoint& ep);
  void drop_domain(uint32_t id);
  // Queues the event under the lock; returns the notifier to call once it is released.
  std::function<void()> queue_fault(uint32_t endpoint, const iommu::DmaFault& fault);

  iommu::IoasidContext& ctx_;
  const iommu::IoasId guest_ram_;
  const GuestRamMap ram_;
  const EngineOptions options_;

  mutable std::mutex mu_;
  uint64_t driver_features_ = 0;
  uint8_t bypass_ = 0;
  std::map<uint32_t, Endpoint> endpoints_;
  std::map<uint32_t, Domain> domains_;
  std::deque<FaultEvent> faults_;
  uint64_t dropped_faults_ = 0;
  std::function<void()> fault_notifier_;
};

}  // namespace ioasis::devices::virtio_iommu
