#include "devices/virtio/queue.h"

#include <fmt/format.h>

#include <atomic>
#include <cstring>

namespace ioasis::devices::virtio {

namespace {

// Section 2.7 "Virtqueue Part Alignment": descriptor table 16, available ring 2, used ring 4.
constexpr uint64_t kDescAlign = 16;
constexpr uint64_t kAvailAlign = 2;
constexpr uint64_t kUsedAlign = 4;
// flags, idx, ring[size], used_event
uint64_t avail_ring_bytes(uint16_t size) { return 4 + 2ull * size + 2; }
// flags, idx, ring[size], avail_event
uint64_t used_ring_bytes(uint16_t size) { return 4 + sizeof(VirtqUsedElem) * size + 2; }
// An indirect table has at most 2^16 entries (its `next` fields are 16-bit); larger is malformed.
constexpr uint64_t kMaxIndirectEntries = 65536;

Error malformed(std::string what) { return Error(Errc::kInvalidArgument, std::move(what)); }

}  // namespace

Queue::Queue(uint16_t max_size) : max_size_(max_size) { reset(); }

void Queue::reset() {
  setup_ = QueueSetup{};
  setup_.size = max_size_;
  started_ = false;
  event_idx_ = false;
  indirect_ = false;
  next_avail_ = 0;
  next_used_ = 0;
  signalled_used_ = 0;
  used_since_signal_ = false;
  fault_.reset();
}

Result<void> Queue::validate_setup() const {
  uint16_t size = setup_.size;
  if (size == 0 || size > max_size_ || (size & (size - 1)) != 0) {
    return malformed(fmt::format("queue size {} is not a power of two up to {}", size, max_size_));
  }
  struct Part {
    const char* name;
    Iova addr;
    uint64_t bytes;
    uint64_t align;
  };
  for (const Part& p : {Part{"descriptor table", setup_.desc, 16ull * size, kDescAlign},
                        Part{"available ring", setup_.avail, avail_ring_bytes(size), kAvailAlign},
                        Part{"used ring", setup_.used, used_ring_bytes(size), kUsedAlign}}) {
    if (p.addr.value % p.align != 0 || !range_fits(p.addr.value, p.bytes)) {
      return malformed(fmt::format("{} at {:#x} is misaligned or wraps", p.name, p.addr.value));
    }
  }
  return {};
}

void Queue::start(bool event_idx, bool indirect) {
  started_ = true;
  event_idx_ = event_idx;
  indirect_ = indirect;
  next_avail_ = next_used_ = signalled_used_ = 0;
  used_since_signal_ = false;
}

std::optional<iommu::DmaFault> Queue::take_fault() {
  auto f = fault_;
  fault_.reset();
  return f;
}

Result<void> Queue::read(iommu::DmaView& dma, Iova iova, void* dst, uint64_t len) {
  auto r = dma.read(iova, dst, len);
  if (r.ok()) return {};
  fault_ = r.fault();
  return r.fault().to_error();
}

Result<void> Queue::write(iommu::DmaView& dma, Iova iova, const void* src, uint64_t len) {
  auto r = dma.write(iova, src, len);
  if (r.ok()) return {};
  fault_ = r.fault();
  return r.fault().to_error();
}

Result<uint16_t> Queue::read_avail_idx(iommu::DmaView& dma) {
  uint16_t idx = 0;
  IOASIS_TRY(read(dma, setup_.avail + 2, &idx, sizeof(idx)));
  // The driver may run at most a queue's worth ahead of what the device has taken.
  if (static_cast<uint16_t>(idx - next_avail_) > setup_.size) {
    return malformed(fmt::format("available index {} is more than {} ahead of {}", idx, setup_.size,
                                 next_avail_));
  }
  return idx;
}

Result<std::optional<DescriptorChain>> Queue::pop(iommu::DmaView& dma) {
  if (!started_) return Error(Errc::kFailedPrecondition, "queue is not running");
  IOASIS_ASSIGN_OR_RETURN(uint16_t avail_idx, read_avail_idx(dma));
  if (avail_idx == next_avail_ && event_idx_) {
    // Ask for a notification at the next buffer, then look again: the driver may have added one
    // before it could see the new avail_event (section 2.7.10).
    uint64_t avail_event = setup_.used.value + 4 + sizeof(VirtqUsedElem) * setup_.size;
    IOASIS_TRY(write(dma, Iova(avail_event), &next_avail_, sizeof(next_avail_)));
    std::atomic_thread_fence(std::memory_order_seq_cst);
    IOASIS_ASSIGN_OR_RETURN(avail_idx, read_avail_idx(dma));
  }
  if (avail_idx == next_avail_) return std::optional<DescriptorChain>();
  // The ring entry must be read after the index that published it.
  std::atomic_thread_fence(std::memory_order_acquire);
  uint16_t head = 0;
  Iova slot = setup_.avail + 4 + 2ull * (next_avail_ % setup_.size);
  IOASIS_TRY(read(dma, slot, &head, sizeof(head)));
  IOASIS_ASSIGN_OR_RETURN(DescriptorChain chain, walk_chain(dma, head));
  ++next_avail_;
  return std::optional<DescriptorChain>(std::move(chain));
}

Result<void> Queue::append(DescriptorChain& chain, const VirtqDesc& desc) {
  if (!range_fits(desc.addr, desc.len)) {
    return malformed(fmt::format("descriptor {:#x}+{:#x} wraps", desc.addr, desc.len));
  }
  bool writable = desc.flags & kDescFlagWrite;
  if (!writable && !chain.writable.empty()) {
    return malformed("a device-readable descriptor follows a device-writable one");
  }
  uint32_t& total = writable ? chain.writable_len : chain.readable_len;
  if (uint64_t{total} + desc.len + (writable ? chain.readable_len : chain.writable_len) >
      UINT32_MAX) {
    return malformed("descriptor chain is longer than 4 GiB");
  }
  if (desc.len == 0) return {};
  total += desc.len;
  (writable ? chain.writable : chain.readable).push_back({Iova(desc.addr), desc.len});
  return {};
}

Result<std::vector<VirtqDesc>> Queue::read_indirect(iommu::DmaView& dma, const VirtqDesc& desc) {
  if (!indirect_) return malformed("indirect descriptor without VIRTIO_F_INDIRECT_DESC");
  if (desc.flags & kDescFlagNext) return malformed("indirect descriptor with NEXT set");
  if (desc.len == 0 || desc.len % sizeof(VirtqDesc) != 0 ||
      desc.len / sizeof(VirtqDesc) > kMaxIndirectEntries) {
    return malformed(fmt::format("indirect table length {} is not a whole table", desc.len));
  }
  if (!range_fits(desc.addr, desc.len)) return malformed("indirect table wraps");
  std::vector<VirtqDesc> table(desc.len / sizeof(VirtqDesc));
  IOASIS_TRY(read(dma, Iova(desc.addr), table.data(), desc.len));
  return table;
}

Result<DescriptorChain> Queue::walk_chain(iommu::DmaView& dma, uint16_t head) {
  if (head >= setup_.size) return malformed(fmt::format("chain head {} is out of range", head));
  DescriptorChain chain;
  chain.head = head;
  uint16_t index = head;
  // A chain visits each descriptor at most once, so more steps than descriptors means a loop.
  for (uint32_t steps = 0;; ++steps) {
    if (steps >= setup_.size) return malformed("descriptor chain loops or exceeds the queue size");
    VirtqDesc desc;
    IOASIS_TRY(read(dma, setup_.desc + sizeof(VirtqDesc) * index, &desc, sizeof(desc)));
    if (desc.flags & kDescFlagIndirect) {
      // Section 2.7.5.3.1: an indirect table is the whole chain; it has no NEXT after it.
      if (steps != 0) return malformed("indirect descriptor inside a chain");
      IOASIS_ASSIGN_OR_RETURN(auto table, read_indirect(dma, desc));
      uint16_t i = 0;
      for (size_t n = 0;; ++n) {
        if (n >= table.size()) return malformed("indirect chain loops or leaves its table");
        const VirtqDesc& d = table[i];
        if (d.flags & kDescFlagIndirect) return malformed("nested indirect descriptor");
        IOASIS_TRY(append(chain, d));
        if (!(d.flags & kDescFlagNext)) return chain;
        if (d.next >= table.size()) return malformed("indirect next is outside its table");
        i = d.next;
      }
    }
    IOASIS_TRY(append(chain, desc));
    if (!(desc.flags & kDescFlagNext)) return chain;
    if (desc.next >= setup_.size)
      return malformed(fmt::format("next {} is out of range", uint16_t{desc.next}));
    index = desc.next;
  }
}

Result<void> Queue::add_used(iommu::DmaView& dma, uint16_t head, uint32_t written) {
  if (!started_) return Error(Errc::kFailedPrecondition, "queue is not running");
  VirtqUsedElem elem{head, written};
  Iova slot = setup_.used + 4 + sizeof(VirtqUsedElem) * (next_used_ % setup_.size);
  IOASIS_TRY(write(dma, slot, &elem, sizeof(elem)));
  ++next_used_;
  // The element must be visible before the index that publishes it.
  std::atomic_thread_fence(std::memory_order_release);
  IOASIS_TRY(write(dma, setup_.used + 2, &next_used_, sizeof(next_used_)));
  used_since_signal_ = true;
  return {};
}

Result<bool> Queue::needs_interrupt(iommu::DmaView& dma) {
  if (!started_ || !used_since_signal_) return false;
  // The used index must be visible before the driver's suppression state is read.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  bool need;
  if (event_idx_) {
    uint16_t used_event = 0;
    IOASIS_TRY(read(dma, setup_.avail + 4 + 2ull * setup_.size, &used_event, sizeof(used_event)));
    need = vring_need_event(used_event, next_used_, signalled_used_);
  } else {
    uint16_t flags = 0;
    IOASIS_TRY(read(dma, setup_.avail, &flags, sizeof(flags)));
    need = !(flags & kAvailFlagNoInterrupt);
  }
  signalled_used_ = next_used_;
  used_since_signal_ = false;
  return need;
}

Result<void> ChainReader::read(void* dst, uint64_t len) {
  if (len > remaining_) return malformed("read past the end of the readable descriptors");
  auto* out = static_cast<uint8_t*>(dst);
  while (len > 0) {
    const Segment& seg = segments_[index_];
    uint64_t n = std::min<uint64_t>(len, seg.len - offset_);
    auto r = dma_.read(seg.addr + offset_, out, n);
    if (!r.ok()) {
      fault_ = r.fault();
      return r.fault().to_error();
    }
    out += n;
    len -= n;
    remaining_ -= n;
    offset_ += n;
    if (offset_ == seg.len) ++index_, offset_ = 0;
  }
  return {};
}

Result<void> ChainWriter::write(const void* src, uint64_t len) {
  if (len > remaining_) return malformed("write past the end of the writable descriptors");
  auto* in = static_cast<const uint8_t*>(src);
  while (len > 0) {
    const Segment& seg = segments_[index_];
    uint64_t n = std::min<uint64_t>(len, seg.len - offset_);
    auto r = dma_.write(seg.addr + offset_, in, n);
    if (!r.ok()) {
      fault_ = r.fault();
      return r.fault().to_error();
    }
    in += n;
    len -= n;
    remaining_ -= n;
    written_ += static_cast<uint32_t>(n);
    offset_ += n;
    if (offset_ == seg.len) ++index_, offset_ = 0;
  }
  return {};
}

Result<void> ChainWriter::skip(uint64_t len) {
  if (len > remaining_) return malformed("skip past the end of the writable descriptors");
  remaining_ -= len;
  while (len > 0) {
    uint64_t n = std::min<uint64_t>(len, segments_[index_].len - offset_);
    len -= n;
    offset_ += n;
    if (offset_ == segments_[index_].len) ++index_, offset_ = 0;
  }
  return {};
}

}  // namespace ioasis::devices::virtio
