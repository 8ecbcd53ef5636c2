#include "devices/virtio/iommu_engine.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

namespace ioasis::devices::virtio_iommu {

using iommu::IovaRange;

std::optional<iommu::HostRange> GuestRamMap::resolve(Gpa gpa, uint64_t length) const {
  if (length == 0 || !range_fits(gpa.value, length)) return std::nullopt;
  for (const RamSlice& s : slices_) {
    if (gpa < s.gpa || gpa - s.gpa >= s.host.length) continue;
    uint64_t offset = gpa - s.gpa;
    if (length > s.host.length - offset) return std::nullopt;
    iommu::HostRange host = s.host;
    host.hva += offset;
    host.length = length;
    if (host.fd >= 0) host.fd_offset += offset;
    return host;
  }
  return std::nullopt;
}

IommuEngine::IommuEngine(iommu::IoasidContext& ctx, iommu::IoasId guest_ram, GuestRamMap ram,
                         EngineOptions options)
    : ctx_(ctx),
      guest_ram_(guest_ram),
      ram_(std::move(ram)),
      options_(options),
      bypass_(options.bypass ? 1 : 0) {}

IommuEngine::~IommuEngine() {
  std::lock_guard lock(mu_);
  for (auto& [id, ep] : endpoints_) {
    if (ctx_.attached_to(ep.device)) (void)ctx_.detach(ep.device);
  }
  for (auto& [id, d] : domains_) {
    if (!d.bypass) (void)ctx_.destroy_ioas(d.ioas);
  }
}

// ---- Configuration ----

uint64_t IommuEngine::device_features() const {
  return kFVersion1 | kFInputRange | kFDomainRange | kFMapUnmap | kFProbe | kFBypassConfig;
}

void IommuEngine::set_driver_features(uint64_t features) {
  std::lock_guard lock(mu_);
  driver_features_ = features & device_features();
}

Config IommuEngine::config() const {
  std::lock_guard lock(mu_);
  Config c{};
  c.page_size_mask = options_.page_size_mask;
  c.input_start = options_.input_range.first.value;
  c.input_end = options_.input_range.last.value;
  c.domain_start = options_.domain_start;
  c.domain_end = options_.domain_end;
  c.probe_size = options_.probe_size;
  c.bypass = bypass_;
  return c;
}

void IommuEngine::write_bypass(uint8_t value) {
  std::lock_guard lock(mu_);
  if (!(driver_features_ & kFBypassConfig)) return;
  // Only 0 and 1 are defined; the device never presents anything else.
  bypass_ = value & 1;
  for (const auto& [id, ep] : endpoints_) {
    if (ep.domain) continue;
    if (auto r = settle_unattached(ep); !r.ok()) {
      spdlog::error("virtio-iommu: endpoint {:#x}: {}", id, r.error().message());
    }
  }
}

bool IommuEngine::bypass_mode() const {
  // BYPASS_CONFIG is always offered, and the spec makes `bypass` decide even when the driver
  // did not accept the feature.
  return bypass_ == 1;
}

// ---- Endpoints ----

Result<void> IommuEngine::move_to(iommu::DeviceId device, iommu::IoasId ioas) {
  if (ctx_.attached_to(device)) return ctx_.replace(device, ioas);
  return ctx_.attach(device, ioas);
}

Result<void> IommuEngine::settle_unattached(const Endpoint& ep) {
  if (bypass_mode()) return move_to(ep.device, guest_ram_);
  if (ctx_.attached_to(ep.device)) return ctx_.detach(ep.device);
  return {};
}

Result<void> IommuEngine::add_endpoint(uint32_t endpoint, iommu::DeviceId device) {
  std::lock_guard lock(mu_);
  if (endpoints_.count(endpoint)) {
    return Error(Errc::kAlreadyExists, fmt::format("endpoint {:#x} already exists", endpoint));
  }
  for (const auto& [id, ep] : endpoints_) {
    if (ep.device == device) {
      return Error(Errc::kAlreadyExists,
                   fmt::format("device {} is already endpoint {:#x}", device.value, id));
    }
  }
  Endpoint ep{device, std::nullopt};
  IOASIS_TRY(settle_unattached(ep));
  endpoints_.emplace(endpoint, ep);
  return {};
}

void IommuEngine::drop_domain(uint32_t id) {
  auto it = domains_.find(id);
  if (it == domains_.end()) return;
  if (!it->second.bypass) {
    if (auto r = ctx_.destroy_ioas(it->second.ioas); !r.ok()) {
      spdlog::error("virtio-iommu: destroying domain {}: {}", id, r.error().message());
    }
  }
  domains_.erase(it);
}

// Bookkeeping only: the caller has already moved the device elsewhere.
void IommuEngine::leave_domain(uint32_t endpoint, Endpoint& ep) {
  if (!ep.domain) return;
  uint32_t id = *ep.domain;
  ep.domain.reset();
  auto it = domains_.find(id);
  if (it == domains_.end()) return;
  it->second.endpoints.erase(endpoint);
  // A domain ceases to exist with its last endpoint (5.13.6.4).
  if (it->second.endpoints.empty()) drop_domain(id);
}

void IommuEngine::reset() {
  std::lock_guard lock(mu_);
  driver_features_ = 0;
  faults_.clear();
  for (auto& [id, ep] : endpoints_) {
    ep.domain.reset();
    if (auto r = settle_unattached(ep); !r.ok()) {
      spdlog::error("virtio-iommu: resetting endpoint {:#x}: {}", id, r.error().message());
    }
  }
  while (!domains_.empty()) drop_domain(domains_.begin()->first);
}

// ---- Requests ----

std::optional<Reply> IommuEngine::handle(std::span<const uint8_t> readable, size_t writable) {
  std::lock_guard lock(mu_);
  auto parsed = parse_request(readable, writable, options_.probe_size);
  if (!parsed) return std::nullopt;
  if (parsed->status != kSOk) return status_reply(parsed->tail_offset, parsed->status);
  size_t tail = parsed->tail_offset;
  return std::visit(
      [&](const auto& req) -> Reply {
        using T = std::decay_t<decltype(req)>;
        if constexpr (std::is_same_v<T, AttachRequest>) return status_reply(tail, attach(req));
        if constexpr (std::is_same_v<T, DetachRequest>) return status_reply(tail, detach(req));
        if constexpr (std::is_same_v<T, MapRequest>) return status_reply(tail, map(req));
        if constexpr (std::is_same_v<T, UnmapRequest>) return status_reply(tail, unmap(req));
        if constexpr (std::is_same_v<T, ProbeRequest>) return probe(req, tail);
      },
      parsed->request);
}

bool IommuEngine::in_domain_range(uint32_t domain) const {
  return domain >= options_.domain_start && domain <= options_.domain_end;
}

bool IommuEngine::in_input_range(uint64_t first, uint64_t last) const {
  return first >= options_.input_range.first.value && last <= options_.input_range.last.value;
}

namespace {

// How an IoasidContext refusal reads to the guest.
uint8_t status_of(const Error& e) {
  switch (e.code()) {
    case Errc::kInvalidArgument:
    case Errc::kAlreadyExists:
      return kSInval;
    case Errc::kResourceExhausted:
      return kSNoMem;
    case Errc::kPermissionDenied:
    case Errc::kFailedPrecondition:
    case Errc::kUnsupported:
      return kSUnsupp;
    default:
      return kSDevErr;
  }
}

}  // namespace

uint8_t IommuEngine::attach(const AttachRequest& req) {
  uint32_t known_flags = (driver_features_ & kFBypassConfig) ? kAttachFBypass : 0;
  if (req.reserved_set || (req.flags & ~known_flags)) return kSInval;
  auto ep_it = endpoints_.find(req.endpoint);
  if (ep_it == endpoints_.end()) return kSNoEnt;
  if (!in_domain_range(req.domain)) return kSRange;
  Endpoint& ep = ep_it->second;
  bool bypass = req.flags & kAttachFBypass;

  auto dom_it = domains_.find(req.domain);
  bool fresh = dom_it == domains_.end();
  if (!fresh && dom_it->second.bypass != bypass) return kSInval;
  if (ep.domain == req.domain) return kSOk;
  if (fresh) {
    iommu::IoasId ioas = guest_ram_;
    if (!bypass) {
      auto created = ctx_.create_ioas(iommu::IoasKind::kGuestDomain,
                                      fmt::format("virtio-iommu domain {}", req.domain));
      if (!created.ok()) return status_of(created.error());
      ioas = *created;
    }
    dom_it = domains_.emplace(req.domain, Domain{ioas, bypass, {}}).first;
  }
  // Replace, not detach then attach: the endpoint is never without an address space in
  // between, which is what "behave as if DETACH then ATTACH" looks like from outside.
  if (auto r = move_to(ep.device, dom_it->second.ioas); !r.ok()) {
    spdlog::warn("virtio-iommu: attaching endpoint {:#x} to domain {}: {}", req.endpoint,
                 req.domain, r.error().message());
    if (fresh) drop_domain(req.domain);
    return status_of(r.error());
  }
  leave_domain(req.endpoint, ep);
  ep.domain = req.domain;
  domains_.at(req.domain).endpoints.insert(req.endpoint);
  return kSOk;
}

uint8_t IommuEngine::detach(const DetachRequest& req) {
  auto ep_it = endpoints_.find(req.endpoint);
  if (ep_it == endpoints_.end()) return kSNoEnt;
  Endpoint& ep = ep_it->second;
  if (ep.domain != req.domain) return kSInval;
  if (auto r = settle_unattached(ep); !r.ok()) {
    spdlog::error("virtio-iommu: detaching endpoint {:#x}: {}", req.endpoint, r.error().message());
    return kSDevErr;
  }
  leave_domain(req.endpoint, ep);
  return kSOk;
}

uint8_t IommuEngine::map(const MapRequest& req) {
  if (!(driver_features_ & kFMapUnmap)) return kSUnsupp;
  if (!in_domain_range(req.domain)) return kSRange;
  // MAP_F_MMIO is not offered, so the device does not recognize it.
  if (req.flags & ~(kMapFRead | kMapFWrite)) return kSInval;
  auto dom = domains_.find(req.domain);
  if (dom == domains_.end()) return kSNoEnt;
  if (dom->second.bypass) return kSInval;
  if (req.virt_end < req.virt_start) return kSInval;
  uint64_t granule = options_.page_size_mask & (~options_.page_size_mask + 1);
  if ((req.virt_start | req.phys_start | (req.virt_end + 1)) & (granule - 1)) return kSRange;
  if (!in_input_range(req.virt_start, req.virt_end)) return kSRange;
  IovaRange want{Iova(req.virt_start), Iova(req.virt_end)};
  if (want.intersects(options_.msi_window)) return kSInval;
  iommu::Perm perm = iommu::Perm::kNone;
  if (req.flags & kMapFRead) perm = perm | iommu::Perm::kRead;
  if (req.flags & kMapFWrite) perm = perm | iommu::Perm::kWrite;
  if (perm == iommu::Perm::kNone) return kSInval;
  uint64_t length = want.length();  // 0 only for all of 2^64, which no RAM backs
  auto host = ram_.resolve(Gpa(req.phys_start), length);
  if (!host) return kSRange;
  auto r = ctx_.map(dom->second.ioas, Iova(req.virt_start), *host, perm);
  if (!r.ok()) {
    spdlog::debug("virtio-iommu: map in domain {}: {}", req.domain, r.error().message());
    return status_of(r.error());
  }
  return kSOk;
}

uint8_t IommuEngine::unmap(const UnmapRequest& req) {
  if (!(driver_features_ & kFMapUnmap)) return kSUnsupp;
  // Refused before touching anything: the spec allows the device to unmap anyway, and
  // refusing outright is the answer a driver can reason about.
  if (req.reserved_set) return kSInval;
  if (!in_domain_range(req.domain)) return kSRange;
  auto dom = domains_.find(req.domain);
  if (dom == domains_.end()) return kSNoEnt;
  if (dom->second.bypass) return kSInval;
  if (req.virt_end < req.virt_start) return kSInval;
  if (!in_input_range(req.virt_start, req.virt_end)) return kSRange;
  iommu::IoasId ioas = dom->second.ioas;
  uint64_t length = req.virt_end - req.virt_start + 1;
  if (req.virt_start == 0 && length == UINT64_MAX) {
    // [0, 2^64-2] looks like the context's "everything" request, which would also remove a
    // mapping ending at 2^64-1; that mapping is cut by the range, so probe for it first.
    auto last = ctx_.unmap(ioas, Iova(UINT64_MAX), 1);
    if (!last.ok() && last.error().code() == Errc::kInvalidArgument) return kSRange;
  }
  if (req.virt_start == 0 && req.virt_end == UINT64_MAX) length = UINT64_MAX;
  auto r = ctx_.unmap(ioas, Iova(req.virt_start), length);
  if (r.ok()) return kSOk;
  switch (r.error().code()) {
    case Errc::kNotFound:  // an empty range is fine (5.13.6.6 example 1)
      return kSOk;
    case Errc::kInvalidArgument:  // the range would split a mapping; nothing was removed
      return kSRange;
    default:
      return status_of(r.error());
  }
}

Reply IommuEngine::probe(const ProbeRequest& req, size_t tail_offset) {
  if (!endpoints_.count(req.endpoint)) return status_reply(tail_offset, kSNoEnt);
  // Properties fill probe_size bytes, zero after the last one (a NONE property ends the list),
  // then the tail.
  Reply r;
  r.bytes.assign(tail_offset + sizeof(ReqTail), 0);
  ProbeResvMem msi{};
  msi.head.type = kProbeTResvMem;
  msi.head.length = sizeof(ProbeResvMem) - sizeof(ProbeProperty);
  msi.subtype = kResvMemTMsi;
  msi.start = options_.msi_window.first.value;
  msi.end = options_.msi_window.last.value;
  if (tail_offset >= sizeof(msi)) std::memcpy(r.bytes.data(), &msi, sizeof(msi));
  r.bytes[tail_offset] = kSOk;
  return r;
}

// ---- Faults ----

std::function<void()> IommuEngine::queue_fault(uint32_t endpoint, const iommu::DmaFault& fault) {
  FaultEvent ev{};
  ev.reason = fault.reason == iommu::FaultReason::kNotAttached ? kFaultRDomain : kFaultRMapping;
  ev.flags = (fault.access == iommu::Access::kRead ? kFaultFRead : kFaultFWrite) | kFaultFAddress;
  ev.endpoint = endpoint;
  ev.address = fault.iova.value;
  if (fault.reason == iommu::FaultReason::kUnknown) {
    // 5.13.6.9: without the ADDRESS flag the driver ignores the address; nor is the access known.
    ev.reason = kFaultRUnknown;
    ev.flags = 0;
    ev.address = 0;
  }
  // The spec lets the device drop events when the driver gives no buffer; a bounded backlog
  // keeps a faulting device from growing memory without limit.
  if (faults_.size() >= options_.fault_backlog) {
    dropped_faults_++;
    return nullptr;
  }
  faults_.push_back(ev);
  return fault_notifier_;
}

void IommuEngine::report_fault(uint32_t endpoint, const iommu::DmaFault& fault) {
  std::function<void()> notify;
  {
    std::lock_guard lock(mu_);
    if (!endpoints_.count(endpoint)) {
      spdlog::warn("virtio-iommu: fault from unknown endpoint {:#x}: {}", endpoint,
                   fault.to_string());
      return;
    }
    notify = queue_fault(endpoint, fault);
  }
  if (notify) notify();
}

void IommuEngine::report_fault(iommu::DeviceId device, const iommu::DmaFault& fault) {
  std::function<void()> notify;
  {
    std::lock_guard lock(mu_);
    auto it = std::find_if(endpoints_.begin(), endpoints_.end(),
                           [&](const auto& e) { return e.second.device == device; });
    if (it == endpoints_.end()) {
      spdlog::warn("virtio-iommu: fault from device {} which is no endpoint: {}", device.value,
                   fault.to_string());
      return;
    }
    notify = queue_fault(it->first, fault);
  }
  if (notify) notify();
}

std::optional<FaultEvent> IommuEngine::next_fault() {
  std::lock_guard lock(mu_);
  if (faults_.empty()) return std::nullopt;
  FaultEvent ev = faults_.front();
  faults_.pop_front();
  return ev;
}

bool IommuEngine::has_faults() const {
  std::lock_guard lock(mu_);
  return !faults_.empty();
}

void IommuEngine::set_fault_notifier(std::function<void()> notify) {
  std::lock_guard lock(mu_);
  fault_notifier_ = std::move(notify);
}

uint64_t IommuEngine::dropped_faults() const {
  std::lock_guard lock(mu_);
  return dropped_faults_;
}

std::optional<iommu::IoasId> IommuEngine::domain_ioas(uint32_t domain) const {
  std::lock_guard lock(mu_);
  auto it = domains_.find(domain);
  if (it == domains_.end()) return std::nullopt;
  return it->second.ioas;
}

size_t IommuEngine::domain_count() const {
  std::lock_guard lock(mu_);
  return domains_.size();
}

}  // namespace ioasis::devices::virtio_iommu
