// Test doubles for virtio devices: a guest memory mapped into an I/O address space, with a DMA
// view over it, and the driver side of a split virtqueue that lays out rings and chains in it.
#pragma once

#include <sys/mman.h>

#include <cstring>
#include <memory>
#include <vector>

#include "base/fd.h"
#include "devices/virtio/queue.h"
#include "iommu/backends/software.h"
#include "iommu/dma_view.h"
#include "iommu/ioasid_context.h"

namespace ioasis::devices::virtio::testing {

// `size` bytes of memory at IOVA `base` in an address space the device is attached to.
class FakeGuest {
 public:
  static constexpr uint64_t kBase = 0x100000;

  explicit FakeGuest(uint64_t size = 1 << 20) : size_(size) {
    mem_ = std::move(
        *MappedRegion::map(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    ioas_ = *ctx_.create_ioas(iommu::IoasKind::kGuestDomain);
    device_ = *ctx_.join(
        iommu::DeviceSpec{"virtio", std::nullopt, std::make_shared<iommu::SoftwareBackend>()});
    (void)ctx_.attach(device_, ioas_);
    (void)ctx_.map(ioas_, Iova(kBase), iommu::HostRange{Hva::of(mem_.data()), size},
                   iommu::Perm::kReadWrite);
  }

  std::unique_ptr<iommu::DmaView> new_view() { return std::move(*ctx_.dma_view(device_)); }
  iommu::IoasidContext& context() { return ctx_; }
  iommu::IoasId ioas() const { return ioas_; }
  uint64_t size() const { return size_; }

  uint8_t* ptr(uint64_t iova) { return mem_.data() + (iova - kBase); }
  template <typename T>
  void put(uint64_t iova, const T& value) {
    std::memcpy(ptr(iova), &value, sizeof(T));
  }
  template <typename T>
  T get(uint64_t iova) {
    T value;
    std::memcpy(&value, ptr(iova), sizeof(T));
    return value;
  }

 private:
  uint64_t size_;
  MappedRegion mem_;
  iommu::IoasidContext ctx_;
  iommu::IoasId ioas_;
  iommu::DeviceId device_;
};

struct Buf {
  uint64_t iova;
  uint32_t len;
  bool writable = false;
};

// The driver's side of one split ring in a FakeGuest.
class FakeDriverQueue {
 public:
  FakeDriverQueue(FakeGuest& guest, uint16_t size, uint64_t desc, uint64_t avail, uint64_t used)
      : g_(guest), size_(size), desc_(desc), avail_(avail), used_(used) {
    std::memset(g_.ptr(desc), 0, 16ull * size);
    std::memset(g_.ptr(avail), 0, 6 + 2ull * size);
    std::memset(g_.ptr(used), 0, 6 + 8ull * size);
  }
  // Rings placed one after the other from `base`.
  FakeDriverQueue(FakeGuest& guest, uint16_t size, uint64_t base)
      : FakeDriverQueue(guest, size, base, base + 16ull * size,
                        (base + 16ull * size + 6 + 2ull * size + 3) & ~3ull) {}

  QueueSetup setup() const { return {size_, Iova(desc_), Iova(avail_), Iova(used_), true}; }

  void set_desc(uint16_t index, const VirtqDesc& d) { g_.put(desc_ + 16ull * index, d); }
  // Writes the buffers as a chain starting at the next free descriptor; returns its head.
  uint16_t add_chain(const std::vector<Buf>& bufs) {
    uint16_t head = next_free_;
    for (size_t i = 0; i < bufs.size(); ++i) {
      uint16_t index = static_cast<uint16_t>((head + i) % size_);
      uint16_t flags = bufs[i].writable ? kDescFlagWrite : 0;
      if (i + 1 < bufs.size()) flags |= kDescFlagNext;
      set_desc(index,
               {bufs[i].iova, bufs[i].len, flags, static_cast<uint16_t>((index + 1) % size_)});
    }
    next_free_ = static_cast<uint16_t>((head + bufs.size()) % size_);
    publish(head);
    return head;
  }
  // One descriptor pointing at an indirect table written at `table`.
  uint16_t add_indirect(uint64_t table, const std::vector<Buf>& bufs) {
    for (size_t i = 0; i < bufs.size(); ++i) {
      uint16_t flags = bufs[i].writable ? kDescFlagWrite : 0;
      if (i + 1 < bufs.size()) flags |= kDescFlagNext;
      g_.put(table + 16 * i,
             VirtqDesc{bufs[i].iova, bufs[i].len, flags, static_cast<uint16_t>(i + 1)});
    }
    uint16_t head = next_free_;
    set_desc(head, {table, static_cast<uint32_t>(16 * bufs.size()), kDescFlagIndirect, 0});
    next_free_ = static_cast<uint16_t>((head + 1) % size_);
    publish(head);
    return head;
  }
  void publish(uint16_t head) {
    uint16_t idx = avail_idx();
    g_.put<uint16_t>(avail_ + 4 + 2ull * (idx % size_), head);
    g_.put<uint16_t>(avail_ + 2, static_cast<uint16_t>(idx + 1));
  }
  uint16_t avail_idx() { return g_.get<uint16_t>(avail_ + 2); }
  void set_avail_idx(uint16_t idx) { g_.put<uint16_t>(avail_ + 2, idx); }
  void set_avail_flags(uint16_t flags) { g_.put<uint16_t>(avail_, flags); }
  void set_used_event(uint16_t v) { g_.put<uint16_t>(avail_ + 4 + 2ull * size_, v); }
  uint16_t avail_event() { return g_.get<uint16_t>(used_ + 4 + 8ull * size_); }
  uint16_t used_idx() { return g_.get<uint16_t>(used_ + 2); }
  VirtqUsedElem used(uint16_t i) { return g_.get<VirtqUsedElem>(used_ + 4 + 8ull * (i % size_)); }

 private:
  FakeGuest& g_;
  uint16_t size_;
  uint64_t desc_, avail_, used_;
  uint16_t next_free_ = 0;
};

}  // namespace ioasis::devices::virtio::testing
