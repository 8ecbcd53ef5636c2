#include "devices/pci/config_space.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>

namespace ioasis::devices {

using namespace pci;  // NOLINT: register names read better unqualified here

namespace {

constexpr uint16_t kCommandWritable = kCommandIo | kCommandMemory | kCommandBusMaster |
                                      kCommandParity | kCommandSerr | kCommandIntxDisable;
constexpr uint64_t kMaxIoBarSize = 256;  // PCI LB 3.0 6.2.5.1
constexpr uint64_t kMinIoBarSize = 4;
constexpr uint64_t kMinMemoryBarSize = 16;
constexpr uint64_t kMaxMemory32BarSize = uint64_t{1} << 31;

uint16_t bar_offset(uint8_t index) { return static_cast<uint16_t>(kBar0 + 4 * index); }

uint32_t bar_type_bits(const PciBar& bar) {
  if (bar.is_io()) return kBarIo;
  uint32_t bits = bar.is_64bit() ? kBarMem64 : 0;
  if (bar.prefetchable) bits |= kBarPrefetchable;
  return bits;
}

Result<void> check_bar(const PciBar& bar) {
  auto bad = [&](const char* why) {
    return Error(Errc::kInvalidArgument,
                 fmt::format("BAR {} of size {:#x}: {}", bar.index, bar.size, why));
  };
  if (bar.index >= kBarCount || (bar.is_64bit() && bar.index + 1 >= kBarCount)) {
    return bad("index out of range");
  }
  if (!std::has_single_bit(bar.size)) return bad("size is not a power of two");
  if (bar.is_io() && (bar.size < kMinIoBarSize || bar.size > kMaxIoBarSize)) {
    return bad("I/O BARs are 4 to 256 bytes");
  }
  if (!bar.is_io() && bar.size < kMinMemoryBarSize) return bad("memory BARs are at least 16 bytes");
  if (bar.kind == PciBarKind::kMemory32 && bar.size > kMaxMemory32BarSize) {
    return bad("too large for a 32-bit BAR");
  }
  return {};
}

}  // namespace

PciConfigSpace::PciConfigSpace(const PciIds& ids, uint16_t size)
    : bytes_(size == kExtendedConfigSpaceSize ? kExtendedConfigSpaceSize : kConfigSpaceSize),
      initial_(bytes_.size()),
      writable_(bytes_.size()),
      write_one_to_clear_(bytes_.size()) {
  set_initial32(kVendorId, uint32_t{ids.device_id} << 16 | ids.vendor_id, 0);
  // Command is writable in its defined bits; status errors are write-1-to-clear.
  set_initial32(kCommand, 0, kCommandWritable);
  write_one_to_clear_[kStatus] = kStatusErrorBits & 0xff;
  write_one_to_clear_[kStatus + 1] = kStatusErrorBits >> 8;
  set_initial32(kRevisionId, ids.class_code << 8 | ids.revision_id, 0);
  set_initial32(kCacheLineSize, 0, 0xff);  // cache line size only; header type 0
  set_initial32(kSubsystemVendorId, uint32_t{ids.subsystem_id} << 16 | ids.subsystem_vendor_id, 0);
  set_initial32(kInterruptLine, uint32_t{ids.interrupt_pin} << 8, 0xff);
}

uint32_t PciConfigSpace::read(uint16_t offset) const {
  if (offset % 4 || offset + 4u > bytes_.size()) return 0xffffffff;
  return get32(offset);
}

void PciConfigSpace::write(uint16_t offset, uint32_t value, uint8_t byte_enables) {
  if (offset % 4 || offset + 4u > bytes_.size()) return;
  for (int i = 0; i < 4; ++i) {
    if (!(byte_enables & (1u << i))) continue;
    size_t at = offset + static_cast<size_t>(i);
    uint8_t v = static_cast<uint8_t>(value >> (8 * i));
    uint8_t merged = static_cast<uint8_t>((bytes_[at] & ~writable_[at]) | (v & writable_[at]));
    bytes_[at] = static_cast<uint8_t>(merged & ~(v & write_one_to_clear_[at]));
  }
}

Result<void> PciConfigSpace::add_bar(const PciBar& bar) {
  IOASIS_TRY(check_bar(bar));
  for (const PciBar& b : bars_) {
    bool taken = b.index == bar.index || (b.is_64bit() && b.index + 1 == bar.index) ||
                 (bar.is_64bit() && bar.index + 1 == b.index);
    if (taken) return Error(Errc::kAlreadyExists, fmt::format("BAR {} is in use", bar.index));
  }
  // Bits below the size are read-only zero, which is what makes the all-ones write read back as
  // the size (PCI LB 3.0 6.2.5.1).
  uint64_t address_mask = ~(bar.size - 1);
  uint32_t flags_mask = bar.is_io() ? kBarIoFlagsMask : kBarMemFlagsMask;
  set_initial32(bar_offset(bar.index), bar_type_bits(bar),
                static_cast<uint32_t>(address_mask) & ~flags_mask);
  if (bar.is_64bit()) {
    set_initial32(bar_offset(bar.index + 1), 0, static_cast<uint32_t>(address_mask >> 32));
  }
  bars_.push_back(bar);
  return {};
}

uint64_t PciConfigSpace::bar_address(uint8_t index) const {
  for (const PciBar& bar : bars_) {
    if (bar.index != index) continue;
    uint32_t flags_mask = bar.is_io() ? kBarIoFlagsMask : kBarMemFlagsMask;
    uint64_t address = get32(bar_offset(index)) & ~flags_mask;
    if (bar.is_64bit()) address |= uint64_t{get32(bar_offset(index + 1))} << 32;
    return address;
  }
  return 0;
}

void PciConfigSpace::set_bar_address(uint8_t index, uint64_t address) {
  for (const PciBar& bar : bars_) {
    if (bar.index != index) continue;
    set32(bar_offset(index), static_cast<uint32_t>(address) | bar_type_bits(bar));
    if (bar.is_64bit()) set32(bar_offset(index + 1), static_cast<uint32_t>(address >> 32));
  }
}

Result<uint16_t> PciConfigSpace::add_capability(std::span<const uint8_t> bytes,
                                                std::span<const uint8_t> writable,
                                                std::span<const uint8_t> write_one_to_clear) {
  if (bytes.size() < 2 || (!writable.empty() && writable.size() != bytes.size()) ||
      (!write_one_to_clear.empty() && write_one_to_clear.size() != bytes.size())) {
    return Error(Errc::kInvalidArgument, "capability: bad length or mask length");
  }
  // The capability list lives in the first 256 bytes, dword-aligned (PCI LB 3.0 6.7).
  uint16_t offset = next_capability_;
  if (offset + bytes.size() > kConfigSpaceSize) {
    return Error(Errc::kResourceExhausted, "capability does not fit in configuration space");
  }
  set_initial(offset, bytes, writable, write_one_to_clear);
  bytes_[offset + 1] = initial_[offset + 1] = 0;
  uint16_t link = last_capability_ ? last_capability_ + 1 : kCapabilitiesPointer;
  bytes_[link] = initial_[link] = static_cast<uint8_t>(offset);
  uint16_t status = get16(kStatus) | kStatusCapabilityList;
  set16(kStatus, status);
  initial_[kStatus] = static_cast<uint8_t>(status);
  last_capability_ = offset;
  next_capability_ = static_cast<uint16_t>((offset + bytes.size() + 3) & ~size_t{3});
  return offset;
}

uint16_t PciConfigSpace::get16(uint16_t offset) const {
  return static_cast<uint16_t>(bytes_[offset] | bytes_[offset + 1] << 8);
}

uint32_t PciConfigSpace::get32(uint16_t offset) const {
  return uint32_t{get16(offset)} | uint32_t{get16(offset + 2)} << 16;
}

void PciConfigSpace::set16(uint16_t offset, uint16_t value) {
  bytes_[offset] = static_cast<uint8_t>(value);
  bytes_[offset + 1] = static_cast<uint8_t>(value >> 8);
}

void PciConfigSpace::set32(uint16_t offset, uint32_t value) {
  set16(offset, static_cast<uint16_t>(value));
  set16(offset + 2, static_cast<uint16_t>(value >> 16));
}

void PciConfigSpace::reset() { bytes_ = initial_; }

void PciConfigSpace::set_initial(uint16_t offset, std::span<const uint8_t> bytes,
                                 std::span<const uint8_t> wmask, std::span<const uint8_t> w1c) {
  for (size_t i = 0; i < bytes.size(); ++i) {
    bytes_[offset + i] = initial_[offset + i] = bytes[i];
    writable_[offset + i] = wmask.empty() ? 0 : wmask[i];
    write_one_to_clear_[offset + i] = w1c.empty() ? 0 : w1c[i];
  }
}

void PciConfigSpace::set_initial32(uint16_t offset, uint32_t value, uint32_t wmask) {
  uint8_t b[4], m[4];
  for (int i = 0; i < 4; ++i) {
    b[i] = static_cast<uint8_t>(value >> (8 * i));
    m[i] = static_cast<uint8_t>(wmask >> (8 * i));
  }
  set_initial(offset, b, m, {});
}

}  // namespace ioasis::devices
