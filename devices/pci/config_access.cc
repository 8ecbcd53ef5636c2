#include "devices/pci/config_access.h"

#include <algorithm>

namespace ioasis::devices {
namespace {

constexpr uint32_t kEnable = 0x80000000;
constexpr uint64_t kAddressPort = 0;
constexpr uint64_t kDataPort = 4;
constexpr uint64_t kResetControlPort = 1;  // 0xcf9

bool valid_width(size_t size) { return size == 1 || size == 2 || size == 4; }

uint32_t load_le(std::span<const uint8_t> data) {
  uint32_t value = 0;
  for (size_t i = 0; i < data.size(); ++i) value |= uint32_t{data[i]} << (8 * i);
  return value;
}

void store_le(uint32_t value, std::span<uint8_t> data) {
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(value >> (8 * i));
}

uint8_t byte_enables(uint64_t byte_offset, size_t size) {
  return static_cast<uint8_t>(((1u << size) - 1) << byte_offset);
}

// The access must stay inside one dword, as both mechanisms require.
bool fits_dword(uint64_t offset, size_t size) {
  return valid_width(size) && (offset % 4) + size <= 4;
}

}  // namespace

bool PciConfigIo::forwards_to_reset_control(uint64_t offset, size_t size) const {
  return reset_control_ && offset == kResetControlPort && size == 1;
}

void PciConfigIo::read(uint64_t offset, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0xff);
  if (forwards_to_reset_control(offset, data.size())) {
    reset_control_->read(0, data);
    return;
  }
  std::unique_lock lock(mu_);
  if (offset == kAddressPort && data.size() == 4) {
    store_le(address_, data);
    return;
  }
  if (offset < kDataPort || !fits_dword(offset - kDataPort, data.size())) return;
  uint32_t address = address_;
  lock.unlock();
  if (!(address & kEnable)) return;
  // Bits 11:8 of the register number extend it past 256 bytes (the AMD extension).
  auto reg = static_cast<uint16_t>((address & 0xfc) | ((address >> 16) & 0xf00));
  uint32_t dword = root_->config_read(static_cast<uint8_t>(address >> 16),
                                      static_cast<uint8_t>(address >> 8), reg);
  store_le(dword >> (8 * (offset - kDataPort)), data);
}

void PciConfigIo::write(uint64_t offset, std::span<const uint8_t> data) {
  if (forwards_to_reset_control(offset, data.size())) {
    reset_control_->write(0, data);
    return;
  }
  std::unique_lock lock(mu_);
  if (offset == kAddressPort && data.size() == 4) {
    // Bits 1:0 are reserved and read back as zero; bits 30:28 are reserved too.
    address_ = load_le(data) & 0x8ffffffc;
    return;
  }
  if (offset < kDataPort || !fits_dword(offset - kDataPort, data.size())) return;
  uint32_t address = address_;
  lock.unlock();
  if (!(address & kEnable)) return;
  uint64_t shift = offset - kDataPort;
  auto reg = static_cast<uint16_t>((address & 0xfc) | ((address >> 16) & 0xf00));
  root_->config_write(static_cast<uint8_t>(address >> 16), static_cast<uint8_t>(address >> 8), reg,
                      load_le(data) << (8 * shift), byte_enables(shift, data.size()));
}

void PciConfigMmio::read(uint64_t offset, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0xff);
  if (offset >= size()) return;
  auto bus = static_cast<uint8_t>(offset >> 20);
  auto devfn = static_cast<uint8_t>(offset >> 12);
  auto reg = static_cast<uint16_t>(offset & 0xffc);
  if (data.size() == 8 && offset % 8 == 0) {
    // A qword read is two dword reads; the second register follows the first.
    store_le(root_->config_read(bus, devfn, reg), data.first(4));
    store_le(root_->config_read(bus, devfn, static_cast<uint16_t>(reg + 4)), data.last(4));
    return;
  }
  if (!fits_dword(offset % 4, data.size())) return;
  store_le(root_->config_read(bus, devfn, reg) >> (8 * (offset % 4)), data);
}

void PciConfigMmio::write(uint64_t offset, std::span<const uint8_t> data) {
  if (offset >= size()) return;
  auto bus = static_cast<uint8_t>(offset >> 20);
  auto devfn = static_cast<uint8_t>(offset >> 12);
  auto reg = static_cast<uint16_t>(offset & 0xffc);
  if (data.size() == 8 && offset % 8 == 0) {
    root_->config_write(bus, devfn, reg, load_le(data.first(4)), 0xf);
    root_->config_write(bus, devfn, static_cast<uint16_t>(reg + 4), load_le(data.last(4)), 0xf);
    return;
  }
  if (!fits_dword(offset % 4, data.size())) return;
  uint64_t shift = offset % 4;
  root_->config_write(bus, devfn, reg, load_le(data) << (8 * shift),
                      byte_enables(shift, data.size()));
}

}  // namespace ioasis::devices
