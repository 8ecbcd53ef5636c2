#include "devices/vfio/server/dma_regions.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace ioasis::devices::vfio_user {

namespace {

// A remote access refused because the IOMMU there does not map the address is a DMA fault like
// any other; any other failure is the peer's.
DmaFaultKind remote_fault(const Result<void>& r) {
  if (r.ok()) return DmaFaultKind::kNone;
  return r.error().code() == Errc::kPermissionDenied ? DmaFaultKind::kUnmapped
                                                     : DmaFaultKind::kPeer;
}

}  // namespace

Result<void> DmaRegions::map(Iova iova, uint64_t size, bool readable, bool writable, UniqueFd fd,
                             uint64_t fd_offset) {
  if (size == 0 || !range_fits(iova.value, size)) {
    return Error(Errc::kInvalidArgument, "DMA region is empty or wraps");
  }
  Region region{size, readable, writable, {}};
  if (fd.valid()) {
    int prot = (readable ? PROT_READ : 0) | (writable ? PROT_WRITE : 0);
    if (fd_offset % 4096 != 0) {
      return Error(Errc::kInvalidArgument, "DMA region fd offset is not page aligned");
    }
    IOASIS_ASSIGN_OR_RETURN(region.mapping,
                            MappedRegion::map(size, prot ? prot : PROT_NONE, MAP_SHARED, fd.get(),
                                              static_cast<off_t>(fd_offset)));
  }
  std::unique_lock lock(mu_);
  auto next = regions_.lower_bound(iova);
  if (next != regions_.end() && next->first.value <= iova.value + (size - 1)) {
    return Error(Errc::kAlreadyExists, "DMA region overlaps an existing one");
  }
  if (next != regions_.begin()) {
    auto prev = std::prev(next);
    if (prev->first.value + (prev->second.size - 1) >= iova.value) {
      return Error(Errc::kAlreadyExists, "DMA region overlaps an existing one");
    }
  }
  regions_.emplace(iova, std::move(region));
  return {};
}

Result<void> DmaRegions::unmap(Iova iova, uint64_t size) {
  std::unique_lock lock(mu_);
  auto it = regions_.find(iova);
  if (it == regions_.end() || it->second.size != size) {
    return Error(Errc::kNotFound, "no DMA region matches the unmap exactly");
  }
  regions_.erase(it);
  return {};
}

void DmaRegions::clear() {
  std::unique_lock lock(mu_);
  regions_.clear();
}

size_t DmaRegions::count() const {
  std::shared_lock lock(mu_);
  return regions_.size();
}

void DmaRegions::set_remote(RemoteAccess remote) {
  std::lock_guard lock(remote_mu_);
  remote_ = std::move(remote);
}

const DmaRegions::Region* DmaRegions::find(Iova iova, uint64_t* left, Iova* base) const {
  auto it = regions_.upper_bound(iova);
  if (it == regions_.begin()) return nullptr;
  --it;
  uint64_t offset = iova.value - it->first.value;
  if (offset >= it->second.size) return nullptr;
  *left = it->second.size - offset;
  *base = it->first;
  return &it->second;
}

DmaFaultKind DmaRegions::check(Iova iova, uint64_t length, bool write) const {
  if (!range_fits(iova.value, length)) return DmaFaultKind::kUnmapped;
  std::shared_lock lock(mu_);
  while (length > 0) {
    uint64_t left;
    Iova base;
    const Region* r = find(iova, &left, &base);
    if (!r) return DmaFaultKind::kUnmapped;
    if (write ? !r->writable : !r->readable) return DmaFaultKind::kReadOnly;
    uint64_t n = std::min(left, length);
    iova += n;
    length -= n;
  }
  return DmaFaultKind::kNone;
}

DmaFaultKind DmaRegions::copy(Iova src, Iova dst, uint64_t length) {
  if (auto f = check(src, length, false); f != DmaFaultKind::kNone) return f;
  if (auto f = check(dst, length, true); f != DmaFaultKind::kNone) return f;
  // Socket transfers are bounded by the spec's default max_data_xfer_size.
  constexpr uint64_t kRemoteChunk = 1 << 20;
  std::vector<uint8_t> bounce;
  while (length > 0) {
    std::shared_lock lock(mu_);
    uint64_t src_left, dst_left;
    Iova src_base, dst_base;
    const Region* s = find(src, &src_left, &src_base);
    const Region* d = find(dst, &dst_left, &dst_base);
    if (!s || !d) return DmaFaultKind::kUnmapped;  // unmapped since the check
    uint64_t n = std::min({src_left, dst_left, length});
    if (s->mapping.valid() && d->mapping.valid()) {
      // memmove: the guest may hand overlapping source and destination.
      std::memmove(d->mapping.data() + (dst - dst_base), s->mapping.data() + (src - src_base), n);
    } else {
      n = std::min(n, kRemoteChunk);
      bounce.resize(n);
      // The region may only be reached through the socket: read and write without holding the
      // table, since the reply to our DMA_READ arrives on the thread that serves DMA_UNMAP.
      bool src_local = s->mapping.valid();
      bool dst_local = d->mapping.valid();
      if (src_local) std::memcpy(bounce.data(), s->mapping.data() + (src - src_base), n);
      lock.unlock();
      {
        std::lock_guard remote_lock(remote_mu_);
        if (!remote_) return DmaFaultKind::kPeer;
        DmaFaultKind f =
            src_local ? DmaFaultKind::kNone : remote_fault(remote_(src, bounce, false));
        if (f == DmaFaultKind::kNone && !dst_local) f = remote_fault(remote_(dst, bounce, true));
        if (f != DmaFaultKind::kNone) return f;
      }
      if (dst_local) {
        lock.lock();  // look again: the region may have gone while the lock was dropped
        d = find(dst, &dst_left, &dst_base);
        if (!d || !d->writable || !d->mapping.valid() || dst_left < n) {
          return DmaFaultKind::kUnmapped;
        }
        std::memcpy(d->mapping.data() + (dst - dst_base), bounce.data(), n);
      }
    }
    src += n;
    dst += n;
    length -= n;
  }
  return DmaFaultKind::kNone;
}

}  // namespace ioasis::devices::vfio_user
