#include "devices/virtio/blk.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/falloc.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace ioasis::devices::virtio {

namespace {

bool full_pread(int fd, uint8_t* buf, uint64_t len, uint64_t offset) {
  while (len > 0) {
    ssize_t n = ::pread(fd, buf, len, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) {
      std::memset(buf, 0, len);  // a file shorter than its last sector reads as zeros
      return true;
    }
    buf += n, len -= n, offset += n;
  }
  return true;
}

bool full_pwrite(int fd, const uint8_t* buf, uint64_t len, uint64_t offset) {
  while (len > 0) {
    ssize_t n = ::pwrite(fd, buf, len, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf += n, len -= n, offset += n;
  }
  return true;
}

}  // namespace

Result<std::shared_ptr<Blk>> Blk::open(const BlkOptions& options) {
  if (options.id.size() > kBlkIdBytes) {
    return Error(Errc::kInvalidArgument,
                 fmt::format("disk id '{}' is longer than {} bytes", options.id, kBlkIdBytes));
  }
  int flags = (options.readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
  UniqueFd fd(::open(options.path.c_str(), flags));
  if (!fd) return Error::from_errno(fmt::format("opening disk {}", options.path));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Error::from_errno(fmt::format("stat {}", options.path));
  if (!S_ISREG(st.st_mode)) {
    return Error(Errc::kInvalidArgument,
                 fmt::format("disk {} is not a regular file", options.path));
  }
  std::shared_ptr<Blk> blk(new Blk(std::move(fd), options, static_cast<uint64_t>(st.st_size)));
  return blk;
}

Blk::Blk(UniqueFd fd, const BlkOptions& options, uint64_t size)
    : fd_(std::move(fd)),
      readonly_(options.readonly),
      id_(options.id),
      queue_size_(options.queue_size) {
  if (id_.empty()) {
    std::string name = options.path.substr(options.path.find_last_of('/') + 1);
    id_ = name.substr(0, kBlkIdBytes);
  }
  if (!readonly_) probe_fallocate();
  config_.capacity = size / kSectorSize;
  config_.seg_max = queue_size_ > 2 ? queue_size_ - 2u : 1u;
  config_.blk_size = kSectorSize;
  config_.num_queues = 1;
  uint32_t max_sectors = static_cast<uint32_t>(kMaxTransfer / kSectorSize);
  if (can_punch_hole_) {
    config_.max_discard_sectors = max_sectors;
    config_.max_discard_seg = 1;
    config_.discard_sector_alignment = 1;
  }
  if (can_punch_hole_ || can_zero_range_) {
    config_.max_write_zeroes_sectors = max_sectors;
    config_.max_write_zeroes_seg = 1;
    config_.write_zeroes_may_unmap = can_punch_hole_;
  }
  features_ = kFeatureRingIndirectDesc | kFeatureRingEventIdx | kBlkFeatureSegMax |
              kBlkFeatureBlkSize | kBlkFeatureFlush;
  if (readonly_) features_ |= kBlkFeatureRo;
  if (can_punch_hole_) features_ |= kBlkFeatureDiscard;
  if (can_punch_hole_ || can_zero_range_) features_ |= kBlkFeatureWriteZeroes;
}

void Blk::probe_fallocate() {
  // Probing past the end of the file with KEEP_SIZE changes no data the guest can see.
  struct stat st {};
  if (::fstat(fd_.get(), &st) != 0) return;
  off_t end = st.st_size + 4096;
  can_punch_hole_ =
      ::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, end, 4096) == 0;
  can_zero_range_ =
      ::fallocate(fd_.get(), FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, end, 4096) == 0;
  // Zeroing past the end may have allocated blocks there; give them back.
  if (can_punch_hole_)
    ::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, end, 4096);
}

uint64_t Blk::features() const { return features_; }

void Blk::read_config(uint64_t offset, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0);
  if (offset >= sizeof(config_)) return;
  uint64_t n = std::min<uint64_t>(data.size(), sizeof(config_) - offset);
  std::memcpy(data.data(), reinterpret_cast<const uint8_t*>(&config_) + offset, n);
}

void Blk::write_config(uint64_t, std::span<const uint8_t>) {
  // Only `writeback` is writable, with CONFIG_WCE, which is not offered.
}

Result<void> Blk::activate(const Activation& activation) {
  if (activation.queues.size() != 1 || !activation.dma || !activation.signals) {
    return Error(Errc::kInvalidArgument, "virtio-blk takes one queue");
  }
  active_ = activation;
  running_ = true;
  return {};
}

void Blk::reset() {
  running_ = false;
  active_ = Activation{};
}

void Blk::report_fault(const std::optional<iommu::DmaFault>& fault) {
  if (fault) active_.signals->dma_fault(*fault);
}

void Blk::notify(uint16_t queue) {
  if (!running_ || queue != 0 || !active_.queues[0].ready()) return;
  Queue& q = active_.queues[0];
  iommu::DmaView& dma = *active_.dma;
  bool used = false;
  for (;;) {
    auto next = q.pop(dma);
    if (!next) {
      report_fault(q.take_fault());
      active_.signals->needs_reset(next.error());
      running_ = false;
      break;
    }
    if (!next->has_value()) break;
    const DescriptorChain& chain = **next;
    VirtioBlkOutHdr hdr{};
    ChainReader reader(chain, dma);
    uint8_t status = kBlkStatusIoErr;
    uint32_t written = 0;
    if (chain.writable_len == 0) {
      // No room for a status byte: the driver broke the request format (section 5.2.6).
      active_.signals->needs_reset(Error(Errc::kInvalidArgument, "request without a status byte"));
      running_ = false;
      break;
    }
    if (reader.read_obj(hdr)) {
      status = execute(chain, hdr, written);
    } else {
      report_fault(reader.fault());
    }
    if (auto r = complete(chain, status, written); !r) {
      report_fault(q.take_fault());
      active_.signals->needs_reset(r.error());
      running_ = false;
      break;
    }
    used = true;
  }
  if (used) active_.signals->used_buffers(0);
}

Result<void> Blk::complete(const DescriptorChain& chain, uint8_t status, uint32_t written) {
  ChainWriter writer(chain, *active_.dma);
  IOASIS_TRY(writer.skip(chain.writable_len - 1));
  if (auto r = writer.write_obj(status); !r) {
    // The status byte is unreachable: report the fault and hand the buffer back unwritten.
    report_fault(writer.fault());
    return active_.queues[0].add_used(*active_.dma, chain.head, 0);
  }
  return active_.queues[0].add_used(*active_.dma, chain.head, written + 1);
}

bool Blk::sectors_in_range(uint64_t sector, uint64_t bytes) const {
  uint64_t sectors = bytes / kSectorSize;
  return sector <= config_.capacity && sectors <= config_.capacity - sector;
}

uint8_t Blk::execute(const DescriptorChain& chain, const VirtioBlkOutHdr& hdr, uint32_t& written) {
  switch (hdr.type) {
    case kBlkTypeIn:
      return read_sectors(chain, hdr.sector, written);
    case kBlkTypeOut:
      return readonly_ ? kBlkStatusIoErr : write_sectors(chain, hdr.sector);
    case kBlkTypeFlush:
      if (readonly_) return kBlkStatusOk;
      return ::fdatasync(fd_.get()) == 0 ? kBlkStatusOk : kBlkStatusIoErr;
    case kBlkTypeGetId:
      return get_id(chain, written);
    case kBlkTypeDiscard:
    case kBlkTypeWriteZeroes:
      return discard_or_zero(chain, hdr.type);
    default:
      return kBlkStatusUnsupp;
  }
}

uint8_t Blk::read_sectors(const DescriptorChain& chain, uint64_t sector, uint32_t& written) {
  uint64_t bytes = chain.writable_len - 1;
  if (bytes % kSectorSize != 0 || bytes > kMaxTransfer || !sectors_in_range(sector, bytes)) {
    return kBlkStatusIoErr;
  }
  bounce_.resize(bytes);
  if (!full_pread(fd_.get(), bounce_.data(), bytes, sector * kSectorSize)) return kBlkStatusIoErr;
  ChainWriter writer(chain, *active_.dma);
  if (!writer.write(bounce_.data(), bytes)) {
    report_fault(writer.fault());
    return kBlkStatusIoErr;
  }
  written = writer.written();
  return kBlkStatusOk;
}

uint8_t Blk::write_sectors(const DescriptorChain& chain, uint64_t sector) {
  uint64_t bytes = chain.readable_len - sizeof(VirtioBlkOutHdr);
  if (bytes % kSectorSize != 0 || bytes > kMaxTransfer || !sectors_in_range(sector, bytes)) {
    return kBlkStatusIoErr;
  }
  bounce_.resize(bytes);
  ChainReader reader(chain, *active_.dma);
  VirtioBlkOutHdr skip;
  if (!reader.read_obj(skip) || !reader.read(bounce_.data(), bytes)) {
    report_fault(reader.fault());
    return kBlkStatusIoErr;
  }
  return full_pwrite(fd_.get(), bounce_.data(), bytes, sector * kSectorSize) ? kBlkStatusOk
                                                                             : kBlkStatusIoErr;
}

uint8_t Blk::get_id(const DescriptorChain& chain, uint32_t& written) {
  // Section 5.2.6: up to 20 bytes, NUL-terminated only when shorter.
  char id[kBlkIdBytes] = {};
  std::memcpy(id, id_.data(), std::min(id_.size(), kBlkIdBytes));
  ChainWriter writer(chain, *active_.dma);
  uint64_t n = std::min<uint64_t>(kBlkIdBytes, chain.writable_len - 1);
  if (!writer.write(id, n)) {
    report_fault(writer.fault());
    return kBlkStatusIoErr;
  }
  written = writer.written();
  return kBlkStatusOk;
}

uint8_t Blk::discard_or_zero(const DescriptorChain& chain, uint32_t type) {
  bool discard = type == kBlkTypeDiscard;
  if (readonly_ || !(features_ & (discard ? kBlkFeatureDiscard : kBlkFeatureWriteZeroes))) {
    return readonly_ ? kBlkStatusIoErr : kBlkStatusUnsupp;
  }
  // One segment per request (max_discard_seg = max_write_zeroes_seg = 1).
  if (chain.readable_len != sizeof(VirtioBlkOutHdr) + sizeof(VirtioBlkDiscardWriteZeroes)) {
    return kBlkStatusIoErr;
  }
  ChainReader reader(chain, *active_.dma);
  VirtioBlkOutHdr hdr;
  VirtioBlkDiscardWriteZeroes seg;
  if (!reader.read_obj(hdr) || !reader.read_obj(seg)) {
    report_fault(reader.fault());
    return kBlkStatusIoErr;
  }
  // Section 5.2.6.2: flags other than unmap, or unmap on a discard, are errors.
  if ((seg.flags & ~1u) || (discard && seg.flags != 0)) return kBlkStatusUnsupp;
  uint64_t bytes = uint64_t{seg.num_sectors} * kSectorSize;
  if (seg.num_sectors > config_.max_write_zeroes_sectors || !sectors_in_range(seg.sector, bytes)) {
    return kBlkStatusIoErr;
  }
  if (bytes == 0) return kBlkStatusOk;
  bool punch = discard || ((seg.flags & 1) && can_punch_hole_) || !can_zero_range_;
  int mode = punch ? (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) : FALLOC_FL_ZERO_RANGE;
  int r = ::fallocate(fd_.get(), mode, static_cast<off_t>(seg.sector * kSectorSize),
                      static_cast<off_t>(bytes));
  return r == 0 ? kBlkStatusOk : kBlkStatusIoErr;
}

}  // namespace ioasis::devices::virtio
