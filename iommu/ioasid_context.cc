#include "iommu/ioasid_context.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>

#include "iommu/context_state.h"
#include "iommu/dma_view.h"

namespace ioasis::iommu {

using internal::Device;
using internal::Ioas;

const char* ioas_kind_name(IoasKind kind) {
  switch (kind) {
    case IoasKind::kGuestRam:
      return "guest-ram";
    case IoasKind::kHostManaged:
      return "host-managed";
    case IoasKind::kGuestDomain:
      return "guest-domain";
  }
  return "unknown";
}

std::string to_string(IovaRange r) {
  return fmt::format("[{:#x}, {:#x}]", r.first.value, r.last.value);
}

std::string to_string(Perm p) {
  switch (p) {
    case Perm::kNone:
      return "none";
    case Perm::kRead:
      return "read";
    case Perm::kWrite:
      return "write";
    case Perm::kReadWrite:
      return "read-write";
  }
  return "?";
}

namespace internal {

std::string describe(const Device& d) { return fmt::format("device '{}'", d.name); }
std::string describe(IoasId id) { return fmt::format("ioas {}", id.value); }

PinSpan pin_span_of(const MapEntry& e) {
  uint64_t start = e.pin_domain == 0 ? e.host.hva.value : e.host.fd_offset;
  return PinSpan{e.pin_domain, start & ~(kPageSize - 1),
                 (start + e.host.length + kPageSize - 1) & ~(kPageSize - 1)};
}

}  // namespace internal

// ---- State helpers ----

Result<Ioas*> IoasidContext::State::find_ioas(IoasId id) {
  auto it = ioas.find(id.value);
  if (it == ioas.end()) return Error(Errc::kNotFound, internal::describe(id) + " does not exist");
  return &it->second;
}

Result<const Ioas*> IoasidContext::State::find_ioas(IoasId id) const {
  auto it = ioas.find(id.value);
  if (it == ioas.end()) return Error(Errc::kNotFound, internal::describe(id) + " does not exist");
  return &it->second;
}

Result<Device*> IoasidContext::State::find_device(DeviceId id) {
  auto it = devices.find(id.value);
  if (it == devices.end()) {
    return Error(Errc::kNotFound, fmt::format("device {} has not joined", id.value));
  }
  return &it->second;
}

uint64_t IoasidContext::State::alignment(const Ioas& x) const {
  uint64_t align = kPageSize;
  for (DeviceId d : x.devices) align = std::max(align, devices.at(d.value).aperture.page_size);
  return align;
}

Result<internal::PinSpan> IoasidContext::State::pin_span(const HostRange& host) {
  internal::PinSpan span;
  uint64_t start = host.hva.value;
  if (host.fd >= 0) {
    struct stat st {};
    if (fstat(host.fd, &st) != 0) return Error::from_errno("fstat of mapped memory fd");
    auto [it, fresh] = pin_domains.try_emplace({st.st_dev, st.st_ino}, next_pin_domain);
    if (fresh) next_pin_domain++;
    span.domain = it->second;
    start = host.fd_offset;
  }
  span.start = start & ~(kPageSize - 1);
  span.end = (start + host.length + kPageSize - 1) & ~(kPageSize - 1);
  return span;
}

Result<void> IoasidContext::State::backend_join(Ioas& x, Device& dev) {
  DmaBackend* b = dev.backend.get();
  bool first = x.backends[b] == 0;
  if (!first) return b->attach(dev.id, x.info.id);
  if (auto r = b->attach(dev.id, x.info.id); !r.ok()) {
    if (x.backends[b] == 0) x.backends.erase(b);
    return r;
  }
  for (const auto& [first_iova, e] : x.table->entries) {
    auto r = b->map(x.info.id, DmaMapping{Iova(first_iova), e.host, e.perm});
    if (!r.ok()) {
      (void)b->detach(dev.id, x.info.id);
      x.backends.erase(b);
      return std::move(r).error().context("replaying mappings of " + internal::describe(x.info.id));
    }
  }
  return {};
}

// ---- Address spaces ----

IoasidContext::IoasidContext(ContextOptions options) : s_(std::make_unique<State>()) {
  s_->options = std::move(options);
}

IoasidContext::~IoasidContext() = default;

Result<IoasId> IoasidContext::create_ioas(IoasKind kind, std::string name) {
  std::lock_guard lock(s_->mu);
  IoasId id{s_->next_ioas++};
  Ioas& x = s_->ioas[id.value];
  x.info = IoasInfo{id, kind, std::move(name)};
  for (const IovaRange& r : s_->options.reserved) x.reserved.push_back({r, std::nullopt});
  spdlog::debug("iommu: created {} ({}, '{}')", internal::describe(id), ioas_kind_name(kind),
                x.info.name);
  return id;
}

Result<void> IoasidContext::destroy_ioas(IoasId id) {
  std::lock_guard lock(s_->mu);
  IOASIS_ASSIGN_OR_RETURN(Ioas * x, s_->find_ioas(id));
  if (!x->devices.empty()) {
    return Error(Errc::kFailedPrecondition, fmt::format("{} is busy: {} device(s) attached",
                                                        internal::describe(id), x->devices.size()));
  }
  for (const auto& [first, e] : x->table->entries) s_->pins.unpin(internal::pin_span_of(e));
  s_->ioas.erase(id.value);
  return {};
}

Result<IoasInfo> IoasidContext::info(IoasId id) const {
  std::lock_guard lock(s_->mu);
  IOASIS_ASSIGN_OR_RETURN(const Ioas* x, s_->find_ioas(id));
  return x->info;
}

std::vector<IoasInfo> IoasidContext::list() const {
  std::lock_guard lock(s_->mu);
  std::vector<IoasInfo> out;
  for (const auto& [id, x] : s_->ioas) out.push_back(x.info);
  return out;
}

// ---- Devices ----

Result<DeviceId> IoasidContext::join(DeviceSpec spec) {
  if (!spec.backend)
    return Error(Errc::kInvalidArgument, "device '" + spec.name + "' has no backend");
  std::lock_guard lock(s_->mu);
  for (const auto& [id, d] : s_->devices) {
    if (d.name == spec.name) {
      return Error(Errc::kAlreadyExists, "device '" + spec.name + "' has already joined");
    }
  }
  DeviceId id{s_->next_device++};
  Device& d = s_->devices[id.value];
  d.id = id;
  d.name = std::move(spec.name);
  d.private_group = !spec.group.has_value();
  d.group = spec.group ? *spec.group : GroupId{s_->next_private_group++};
  d.backend = std::move(spec.backend);
  return id;
}

Result<void> IoasidContext::leave(DeviceId id) {
  std::lock_guard lock(s_->mu);
  IOASIS_ASSIGN_OR_RETURN(Device * d, s_->find_device(id));
  if (d->ioas) {
    return Error(Errc::kFailedPrecondition,
                 internal::describe(*d) + " is still attached to " + internal::describe(*d->ioas));
  }
  s_->devices.erase(id.value);
  return {};
}

std::optional<IoasId> IoasidContext::attached_to(DeviceId id) const {
  std::lock_guard lock(s_->mu);
  auto it = s_->devices.find(id.value);
  if (it == s_->devices.end()) return std::nullopt;
  return it->second.ioas;
}

namespace {

std::vector<IovaRange> outside(const Aperture& ap) {
  std::vector<IovaRange> out;
  if (ap.range.first.value > 0) out.push_back({Iova(0), ap.range.first - 1});
  if (ap.range.last.value < UINT64_MAX) out.push_back({ap.range.last + 1, Iova(UINT64_MAX)});
  return out;
}

// The isolation rule: a device may not use `target` while a device of its group uses another
// address space. `moving` lists devices that change address space in the same operation.
Result<void> check_group(const std::map<uint32_t, Device>& devices, const Device& dev,
                         IoasId target) {
  if (dev.private_group) return {};
  for (const auto& [id, other] : devices) {
    if (other.id == dev.id || other.group != dev.group || !other.ioas) continue;
    if (*other.ioas == target) continue;
    return Error(
        Errc::kPermissionDenied,
        fmt::format("cannot attach {} to {}: {} of the same isolation group {} is "
                    "attached to {}, and devices of one group must share an address "
                    "space",
                    internal::describe(dev), internal::describe(target), internal::describe(other),
                    dev.group.value, internal::describe(*other.ioas)));
  }
  return {};
}

// Refuses an aperture that existing mappings or allowed ranges do not fit, so that attaching
// never silently loses a translation.
Result<void> check_fits(const Ioas& x, const Device& dev, const Aperture& ap) {
  auto fail = [&](const std::string& why) {
    return Error(Errc::kFailedPrecondition,
                 fmt::format("cannot attach {} to {}: {}", internal::describe(dev),
                             internal::describe(x.info.id), why));
  };
  const auto& entries = x.table->entries;
  if (!entries.empty()) {
    IovaRange span{Iova(entries.begin()->first), Iova(entries.rbegin()->second.last)};
    if (!ap.range.contains(span)) {
      return fail(fmt::format("mappings span {} but the device reaches only {}", to_string(span),
                              to_string(ap.range)));
    }
  }
  if (ap.page_size & (ap.page_size - 1)) return fail("page size is not a power of two");
  for (const auto& [first, e] : entries) {
    if ((first | (e.last + 1)) & (ap.page_size - 1)) {
      return fail(fmt::format("mapping {} is not aligned to the device's {:#x}-byte pages",
                              to_string({Iova(first), Iova(e.last)}), ap.page_size));
    }
  }
  for (const IovaRange& hole : outside(ap)) {
    for (const IovaRange& a : x.allowed) {
      if (a.intersects(hole)) {
        return fail("allowed range " + to_string(a) + " lies outside the device's aperture");
      }
    }
  }
  return {};
}

void add_aperture_holes(Ioas& x, const Device& dev) {
  for (const IovaRange& hole : outside(dev.aperture)) x.reserved.push_back({hole, dev.id});
}

void remove_aperture_holes(Ioas& x, DeviceId id) {
  std::erase_if(x.reserved, [&](const internal::Reserved& r) { return r.owner == id; });
}

}  // namespace

Result<void> IoasidContext::attach(DeviceId id, IoasId ioas) {
  std::lock_guard lock(s_->mu);
  IOASIS_ASSIGN_OR_RETURN(Device * d, s_->find_device(id));
  IOASIS_ASSIGN_OR_RETURN(Ioas * x, s_->find_ioas(ioas));
  if (d->ioas) {
    return Error(Errc::kFailedPrecondition,
                 fmt::format("{} is already attached to {}; use replace to move it",
                             internal::describe(*d), internal::describe(*d->ioas)));
  }
  IOASIS_TRY(check_group(s_->devices, *d, ioas));
  Aperture ap = d->backend->aperture(id);
  IOASIS_TRY(check_fits(*x, *d, ap));
  IOASIS_TRY(s_->backend_join(*x, *d));
  x->backends[d->backend.get()]++;
  d->aperture = ap;
  d->ioas = ioas;
  x->devices.push_back(id);
  add_aperture_holes(*x, *d);
  d->slot->point_to(x->table);
  spdlog::debug("iommu: attached {} to {}", internal::describe(*d), internal::describe(ioas));
  return {};
}

Result<void> IoasidContext::detach(DeviceId id) {
  std::lock_guard lock(s_->mu);
  IOASIS_ASSIGN_OR_RETURN(Device * d, s_->find_device(id));
  if (!d->ioas)
    return Error(Errc::kFailedPrecondition, internal::describe(*d) + " is not attached");
  Ioas& x = s_->ioas.at(d->ioas->value);
  IOASIS_TRY(d->backend->detach(id, x.info.id));
  d->slot->point_to(nullptr);
  if (--x.backends[d->backend.get()] == 0) x.backends.erase(d->backend.get());
  std::erase(x.devices, id);
  remove_aperture_holes(x, id);
  d->ioas.reset();
  return {};
}

Result<void> IoasidContext::replace(DeviceId id, IoasId ioas) {
  std::lock_guard lock(s_->mu);
  IOASIS_ASSIGN_OR_RETURN(Device * d, s_->find_device(id));
  IOASIS_ASSIGN_OR_RETURN(Ioas * to, s_->find_ioas(ioas));
  if (!d->ioas)
    return Error(Errc::kFailedPrecondition, internal::describe(*d) + " is not attached");
  if (*d->ioas == ioas) return {};
  Ioas& from = s_->ioas.at(d->ioas->value);
  std::vector<Device*> movers;
  for (DeviceId other : from.devices) {
    Device& o = s_->devices.at(other.value);
    if (o.id == id || (!d->private_group && o.group == d->group)) movers.push_back(&o);
  }
  std::vector<Aperture> apertures;
  for (Device* m : movers) {
    apertures.push_back(m->backend->aperture(m->id));
    IOASIS_TRY(check_fits(*to, *m, apertures.back()));
  }
  for (size_t i = 0; i < movers.size(); ++i) {
    Device* m = movers[i];
    auto r = s_->backend_join(*to, *m);
    if (!r.ok()) {
      // Put the devices already moved back where their group still is.
      for (size_t j = 0; j < i; ++j) {
        (void)movers[j]->backend->attach(movers[j]->id, from.info.id);
        if (--to->backends[movers[j]->backend.get()] == 0)
          to->backends.erase(movers[j]->backend.get());
      }
      return r;
    }
    to->backends[m->backend.get()]++;
  }
  for (size_t i = 0; i < movers.size(); ++i) {
    Device* m = movers[i];
    if (--from.backends[m->backend.get()] == 0) from.backends.erase(m->backend.get());
    std::erase(from.devices, m->id);
    remove_aperture_holes(from, m->id);
    m->aperture = apertures[i];
    m->ioas = ioas;
    to->devices.push_back(m->id);
    add_aperture_holes(*to, *m);
    m->slot->point_to(to->table);
  }
  return {};
}

Result<std::unique_ptr<DmaView>> IoasidContext::dma_view(DeviceId id) {
  std::lock_guard lock(s_->mu);
  IOASIS_ASSIGN_OR_RETURN(Device * d, s_->find_device(id));
  return std::make_unique<DmaView>(d->slot);
}

// ---- Statistics ----

Result<IoasStats> IoasidContext::stats(IoasId id) const {
  std::lock_guard lock(s_->mu);
  IOASIS_ASSIGN_OR_RETURN(const Ioas* x, s_->find_ioas(id));
  // Counted on demand: keeping a second pin tree per address space would double the cost of
  // every map and unmap for a figure only statistics want.
  internal::PinTracker pins;
  for (const auto& [first, e] : x->table->entries) pins.pin(internal::pin_span_of(e));
  return IoasStats{x->table->entries.size(), x->mapped_bytes, pins.pinned_bytes(),
                   static_cast<uint32_t>(x->devices.size())};
}

Result<std::vector<DmaMapping>> IoasidContext::mappings(IoasId id, Iova from, size_t max) const {
  std::lock_guard lock(s_->mu);
  IOASIS_ASSIGN_OR_RETURN(const Ioas* x, s_->find_ioas(id));
  std::vector<DmaMapping> out;
  // A mapping that starts below `from` but covers it is included: listings resume mid-way.
  auto it = x->table->find(from.value);
  if (it == x->table->entries.end()) it = x->table->entries.lower_bound(from.value);
  for (; it != x->table->entries.end() && out.size() < max; ++it) {
    out.push_back(DmaMapping{Iova(it->first), it->second.host, it->second.perm});
    out.back().host.length = it->second.last - it->first + 1;
  }
  return out;
}

Result<std::vector<DeviceId>> IoasidContext::devices(IoasId id) const {
  std::lock_guard lock(s_->mu);
  IOASIS_ASSIGN_OR_RETURN(const Ioas* x, s_->find_ioas(id));
  return x->devices;
}

ContextStats IoasidContext::stats() const {
  std::lock_guard lock(s_->mu);
  ContextStats st;
  st.address_spaces = static_cast<uint32_t>(s_->ioas.size());
  st.devices = static_cast<uint32_t>(s_->devices.size());
  for (const auto& [id, x] : s_->ioas) {
    st.attached_devices += static_cast<uint32_t>(x.devices.size());
    st.mappings += x.table->entries.size();
    st.mapped_bytes += x.mapped_bytes;
  }
  st.pinned_bytes = s_->pins.pinned_bytes();
  st.pinned_limit = s_->options.pinned_limit;
  return st;
}

}  // namespace ioasis::iommu
