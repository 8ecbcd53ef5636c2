#include "iommu/dma_view.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "iommu/ioas_table.h"

namespace ioasis::iommu {
namespace {

const char* access_name(Access a) { return a == Access::kRead ? "read" : "write"; }

const char* reason_name(FaultReason r) {
  switch (r) {
    case FaultReason::kUnmapped:
      return "unmapped";
    case FaultReason::kPermission:
      return "permission";
    case FaultReason::kNotAttached:
      return "not attached";
    case FaultReason::kUnknown:
      break;
  }
  return "unknown";
}

Perm needed_perm(Access a) { return a == Access::kRead ? Perm::kRead : Perm::kWrite; }

// Written so that a mapping ending at UINT64_MAX does not overflow the length.
HostSpan span_of(uint64_t iova, uint64_t length, uint64_t first, uint64_t last, uint64_t hva) {
  return HostSpan{Hva(hva + (iova - first)), std::min(length - 1, last - iova) + 1};
}

}  // namespace

std::string DmaFault::to_string() const {
  if (reason == FaultReason::kUnknown) return "a DMA faulted at an unknown IOVA";
  return fmt::format("DMA {} at IOVA {:#x} faulted: {}", access_name(access), iova.value,
                     reason_name(reason));
}

Error DmaFault::to_error() const {
  Errc code = reason == FaultReason::kPermission ? Errc::kPermissionDenied : Errc::kNotFound;
  return Error(code, to_string());
}

DmaView::DmaView(std::shared_ptr<internal::DeviceSlot> slot) : slot_(std::move(slot)) { refresh(); }

DmaView::~DmaView() = default;

void DmaView::set_iotlb_enabled(bool enabled) {
  iotlb_enabled_ = enabled;
  flush();
}

void DmaView::flush() {
  for (auto& e : iotlb_) e.page = UINT64_MAX;
}

void DmaView::refresh() {
  std::lock_guard lock(slot_->mu);
  table_ = slot_->table;
  generation_ = slot_->generation.load(std::memory_order_acquire);
  flush();
}

DmaResult<HostSpan> DmaView::translate(Iova iova, uint64_t length, Access access) {
  if (slot_->generation.load(std::memory_order_acquire) != generation_) refresh();
  if (!table_) return DmaFault{iova, access, FaultReason::kNotAttached};
  uint64_t epoch = table_->epoch.load(std::memory_order_acquire);
  uint64_t page = iova.value >> 12;
  Entry& e = iotlb_[slot_of(page)];
  if (iotlb_enabled_ && e.page == page && e.epoch == epoch) {
    ++hits_;
    if (!has_perm(e.perm, needed_perm(access))) {
      return DmaFault{iova, access, FaultReason::kPermission};
    }
    return span_of(iova.value, length, e.first, e.last, e.hva_first);
  }
  ++misses_;
  return walk(iova.value, length, access);
}

DmaResult<HostSpan> DmaView::walk(uint64_t iova, uint64_t length, Access access) {
  std::shared_lock lock(table_->mu);
  auto it = table_->find(iova);
  if (it == table_->entries.end()) return DmaFault{Iova(iova), access, FaultReason::kUnmapped};
  const internal::MapEntry& m = it->second;
  if (iotlb_enabled_) {
    // The epoch read under the lock matches the table contents we saw; an unmap that completes
    // after we drop the lock bumps it and so retires this entry.
    Entry& e = iotlb_[slot_of(iova >> 12)];
    e = Entry{iova >> 12,       table_->epoch.load(std::memory_order_acquire),
              it->first,        m.last,
              m.host.hva.value, m.perm};
  }
  if (!has_perm(m.perm, needed_perm(access))) {
    return DmaFault{Iova(iova), access, FaultReason::kPermission};
  }
  return span_of(iova, length, it->first, m.last, m.host.hva.value);
}

DmaResult<void> DmaView::read(Iova iova, void* dst, uint64_t length) {
  auto* out = static_cast<uint8_t*>(dst);
  while (length > 0) {
    auto span = translate(iova, length, Access::kRead);
    if (!span.ok()) return span.fault();
    std::memcpy(out, span->hva.ptr(), span->length);
    out += span->length;
    iova += span->length;
    length -= span->length;
  }
  return {};
}

DmaResult<void> DmaView::write(Iova iova, const void* src, uint64_t length) {
  auto* in = static_cast<const uint8_t*>(src);
  while (length > 0) {
    auto span = translate(iova, length, Access::kWrite);
    if (!span.ok()) return span.fault();
    std::memcpy(span->hva.ptr(), in, span->length);
    in += span->length;
    iova += span->length;
    length -= span->length;
  }
  return {};
}

}  // namespace ioasis::iommu
