// virtio-blk (virtio 1.2 section 5.2) over a raw image file: read, write, flush, get-id, and
// discard and write-zeroes where the file system can punch holes or zero ranges. A read-only
// disk offers VIRTIO_BLK_F_RO and answers writes with VIRTIO_BLK_S_IOERR.
//
// Requests run synchronously on the control loop with pread/pwrite through a bounce buffer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/fd.h"
#include "devices/virtio/queue.h"
#include "devices/virtio/virtio_device.h"

namespace ioasis::devices::virtio {

// Section 5.2.4, struct virtio_blk_config (up to the write-zeroes fields).
struct [[gnu::packed]] VirtioBlkConfig {
  uint64_t capacity;  // in 512-byte sectors
  uint32_t size_max;
  uint32_t seg_max;
  uint16_t cylinders;
  uint8_t heads;
  uint8_t sectors;
  uint32_t blk_size;
  uint8_t physical_block_exp;
  uint8_t alignment_offset;
  uint16_t min_io_size;
  uint32_t opt_io_size;
  uint8_t writeback;
  uint8_t unused0;
  uint16_t num_queues;
  uint32_t max_discard_sectors;
  uint32_t max_discard_seg;
  uint32_t discard_sector_alignment;
  uint32_t max_write_zeroes_sectors;
  uint32_t max_write_zeroes_seg;
  uint8_t write_zeroes_may_unmap;
  uint8_t unused1[3];
};
static_assert(sizeof(VirtioBlkConfig) == 60);
static_assert(offsetof(VirtioBlkConfig, blk_size) == 20);
static_assert(offsetof(VirtioBlkConfig, num_queues) == 34);
static_assert(offsetof(VirtioBlkConfig, max_write_zeroes_sectors) == 48);

// Section 5.2.6, the request header.
struct [[gnu::packed]] VirtioBlkOutHdr {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};
static_assert(sizeof(VirtioBlkOutHdr) == 16);

// Section 5.2.6, struct virtio_blk_discard_write_zeroes.
struct [[gnu::packed]] VirtioBlkDiscardWriteZeroes {
  uint64_t sector;
  uint32_t num_sectors;
  uint32_t flags;  // bit 0: unmap
};
static_assert(sizeof(VirtioBlkDiscardWriteZeroes) == 16);

inline constexpr uint64_t kBlkFeatureSegMax = 1ull << 2;
inline constexpr uint64_t kBlkFeatureRo = 1ull << 5;
inline constexpr uint64_t kBlkFeatureBlkSize = 1ull << 6;
inline constexpr uint64_t kBlkFeatureFlush = 1ull << 9;
inline constexpr uint64_t kBlkFeatureDiscard = 1ull << 13;
inline constexpr uint64_t kBlkFeatureWriteZeroes = 1ull << 14;

inline constexpr uint32_t kBlkTypeIn = 0;
inline constexpr uint32_t kBlkTypeOut = 1;
inline constexpr uint32_t kBlkTypeFlush = 4;
inline constexpr uint32_t kBlkTypeGetId = 8;
inline constexpr uint32_t kBlkTypeDiscard = 11;
inline constexpr uint32_t kBlkTypeWriteZeroes = 13;

inline constexpr uint8_t kBlkStatusOk = 0;
inline constexpr uint8_t kBlkStatusIoErr = 1;
inline constexpr uint8_t kBlkStatusUnsupp = 2;

inline constexpr uint64_t kSectorSize = 512;
inline constexpr size_t kBlkIdBytes = 20;  // VIRTIO_BLK_ID_BYTES

struct BlkOptions {
  std::string path;
  bool readonly = false;
  std::string id;  // what GET_ID returns, at most 20 bytes; the file name when empty
  uint16_t queue_size = 256;
};

class Blk final : public VirtioDevice {
 public:
  static Result<std::shared_ptr<Blk>> open(const BlkOptions& options);

  DeviceType type() const override { return DeviceType::kBlock; }
  uint64_t features() const override;
  std::vector<uint16_t> queue_max_sizes() const override { return {queue_size_}; }
  void read_config(uint64_t offset, std::span<uint8_t> data) override;
  void write_config(uint64_t offset, std::span<const uint8_t> data) override;
  Result<void> activate(const Activation& activation) override;
  void notify(uint16_t queue) override;
  void reset() override;

  uint64_t capacity_sectors() const { return config_.capacity; }

  // Largest data transfer of one request; larger ones fail with IOERR.
  static constexpr uint64_t kMaxTransfer = 4ull << 20;

 private:
  Blk(UniqueFd fd, const BlkOptions& options, uint64_t size);
  void probe_fallocate();
  // Runs one request; returns the status to report and how many data bytes were written.
  uint8_t execute(const DescriptorChain& chain, const VirtioBlkOutHdr& hdr, uint32_t& written);
  uint8_t read_sectors(const DescriptorChain& chain, uint64_t sector, uint32_t& written);
  uint8_t write_sectors(const DescriptorChain& chain, uint64_t sector);
  uint8_t get_id(const DescriptorChain& chain, uint32_t& written);
  uint8_t discard_or_zero(const DescriptorChain& chain, uint32_t type);
  bool sectors_in_range(uint64_t sector, uint64_t bytes) const;
  // Completes one chain: status byte at the end of its writable part, then the used ring.
  Result<void> complete(const DescriptorChain& chain, uint8_t status, uint32_t written);
  void report_fault(const std::optional<iommu::DmaFault>& fault);

  UniqueFd fd_;
  bool readonly_;
  std::string id_;
  uint16_t queue_size_;
  bool can_punch_hole_ = false;
  bool can_zero_range_ = false;
  VirtioBlkConfig config_{};
  uint64_t features_ = 0;

  Activation active_{};
  bool running_ = false;
  std::vector<uint8_t> bounce_;
};

}  // namespace ioasis::devices::virtio
