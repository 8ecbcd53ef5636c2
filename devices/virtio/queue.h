// A split virtqueue (virtio 1.2 section 2.7) as the device sees it: rings and buffers are IOVAs
// reached only through an iommu::DmaView, so a device behind the virtio-iommu translates every
// ring access like a buffer access, and a device outside it reaches guest RAM at IOVA = GPA.
//
// Chains are validated here, once: loops, chains longer than the queue, nested or misshapen
// indirect tables, readable descriptors after writable ones, lengths that wrap or overflow a
// 32-bit used length. Device code receives a DescriptorChain of IOVA segments and copies through
// ChainReader / ChainWriter, which stop at the chain's end and at the first DMA fault.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "base/address.h"
#include "base/result.h"
#include "iommu/dma_view.h"

namespace ioasis::devices::virtio {

// Virtio 1.2 section 2.7.5, struct virtq_desc.
struct [[gnu::packed]] VirtqDesc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(VirtqDesc) == 16);
static_assert(offsetof(VirtqDesc, flags) == 12);

// Virtio 1.2 section 2.7.8, struct virtq_used_elem.
struct [[gnu::packed]] VirtqUsedElem {
  uint32_t id;
  uint32_t len;
};
static_assert(sizeof(VirtqUsedElem) == 8);

inline constexpr uint16_t kDescFlagNext = 1;
inline constexpr uint16_t kDescFlagWrite = 2;
inline constexpr uint16_t kDescFlagIndirect = 4;
inline constexpr uint16_t kAvailFlagNoInterrupt = 1;  // section 2.7.6
inline constexpr uint16_t kUsedFlagNoNotify = 1;      // section 2.7.8
inline constexpr uint16_t kMaxQueueSize = 32768;      // section 2.7: sizes are at most 2^15

// Section 2.7.7.2: whether the driver asked to hear of used index `new_idx`, given that it was
// last told of `old_idx` and asked to hear once the index passes `event`.
constexpr bool vring_need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx) {
  return static_cast<uint16_t>(new_idx - event - 1) < static_cast<uint16_t>(new_idx - old_idx);
}

struct Segment {
  Iova addr;
  uint32_t len = 0;
};

// A validated chain: readable (driver-to-device) segments, then writable ones, with their
// combined lengths fitting in 32 bits. Zero-length descriptors are dropped.
struct DescriptorChain {
  uint16_t head = 0;
  std::vector<Segment> readable;
  std::vector<Segment> writable;
  uint32_t readable_len = 0;
  uint32_t writable_len = 0;
};

// What the driver programs through the transport while the queue is not enabled.
struct QueueSetup {
  uint16_t size = 0;
  Iova desc;
  Iova avail;  // "driver area"
  Iova used;   // "device area"
  bool enabled = false;
};

class Queue {
 public:
  explicit Queue(uint16_t max_size);

  uint16_t max_size() const { return max_size_; }
  QueueSetup& setup() { return setup_; }
  const QueueSetup& setup() const { return setup_; }
  // Checks the driver's setup before it is enabled: size a power of two within max_size, ring
  // addresses aligned (section 2.7, table of alignments) and not wrapping.
  Result<void> validate_setup() const;

  // Starts processing with the negotiated ring features; indices start at 0.
  void start(bool event_idx, bool indirect);
  bool ready() const { return started_; }
  // Back to the power-on state: size max_size, addresses 0, disabled.
  void reset();

  // The next chain the driver made available, nullopt when there is none. An error means the
  // ring or a chain is malformed or unreachable and the device must stop using the queue.
  Result<std::optional<DescriptorChain>> pop(iommu::DmaView& dma);
  // Returns a chain to the driver with `written` bytes written into its writable segments.
  Result<void> add_used(iommu::DmaView& dma, uint16_t head, uint32_t written);
  // Whether the driver wants an interrupt for what was used since the last call that said so.
  Result<bool> needs_interrupt(iommu::DmaView& dma);

  // The DMA fault behind the last failed ring access, if that is what it was; clears it.
  std::optional<iommu::DmaFault> take_fault();

  uint16_t next_avail() const { return next_avail_; }
  uint16_t next_used() const { return next_used_; }

 private:
  Result<void> read(iommu::DmaView& dma, Iova iova, void* dst, uint64_t len);
  Result<void> write(iommu::DmaView& dma, Iova iova, const void* src, uint64_t len);
  Result<uint16_t> read_avail_idx(iommu::DmaView& dma);
  Result<DescriptorChain> walk_chain(iommu::DmaView& dma, uint16_t head);
  Result<std::vector<VirtqDesc>> read_indirect(iommu::DmaView& dma, const VirtqDesc& desc);
  Result<void> append(DescriptorChain& chain, const VirtqDesc& desc);

  uint16_t max_size_;
  QueueSetup setup_;
  bool started_ = false;
  bool event_idx_ = false;
  bool indirect_ = false;
  uint16_t next_avail_ = 0;
  uint16_t next_used_ = 0;
  uint16_t signalled_used_ = 0;  // the used index the driver last heard of
  bool used_since_signal_ = false;
  std::optional<iommu::DmaFault> fault_;
};

// Copies out of a chain's readable segments, in order.
class ChainReader {
 public:
  ChainReader(const DescriptorChain& chain, iommu::DmaView& dma)
      : segments_(chain.readable), remaining_(chain.readable_len), dma_(dma) {}
  uint64_t remaining() const { return remaining_; }
  // Fails with kInvalidArgument past the chain's end (nothing is read), or with the DMA fault
  // (available from fault()) when a segment does not translate.
  Result<void> read(void* dst, uint64_t len);
  template <typename T>
  Result<void> read_obj(T& out) {
    return read(&out, sizeof(T));
  }
  const std::optional<iommu::DmaFault>& fault() const { return fault_; }

 private:
  const std::vector<Segment>& segments_;
  size_t index_ = 0;
  uint64_t offset_ = 0;  // inside segments_[index_]
  uint64_t remaining_;
  iommu::DmaView& dma_;
  std::optional<iommu::DmaFault> fault_;
};

// Copies into a chain's writable segments, in order; counts the bytes written for the used ring.
class ChainWriter {
 public:
  ChainWriter(const DescriptorChain& chain, iommu::DmaView& dma)
      : segments_(chain.writable), remaining_(chain.writable_len), dma_(dma) {}
  uint64_t remaining() const { return remaining_; }
  uint32_t written() const { return written_; }
  Result<void> write(const void* src, uint64_t len);
  // Moves past `len` bytes without writing them (they do not count as written).
  Result<void> skip(uint64_t len);
  template <typename T>
  Result<void> write_obj(const T& in) {
    return write(&in, sizeof(T));
  }
  const std::optional<iommu::DmaFault>& fault() const { return fault_; }

 private:
  const std::vector<Segment>& segments_;
  size_t index_ = 0;
  uint64_t offset_ = 0;
  uint64_t remaining_;
  uint32_t written_ = 0;
  iommu::DmaView& dma_;
  std::optional<iommu::DmaFault> fault_;
};

}  // namespace ioasis::devices::virtio
