#include "devices/vfio/vfio_pci_device.h"

#include <fmt/format.h>

#include <bit>
#include <cstring>
#include <map>

#include "base/log.h"
#include "devices/pci/pci_regs.h"

namespace ioasis::devices {

namespace {

constexpr uint16_t kRomBar = 0x30;
constexpr uint16_t kMsixControl = 2;  // offset of message control in the capability
constexpr uint16_t kMsixTableSizeMask = 0x07ff;
constexpr uint64_t kPage = 4096;

struct Span {
  uint64_t begin, end;
};

// [begin, end) cut down to whole pages, minus the pages any of `holes` touches.
std::vector<Span> whole_pages_outside(Span area, std::span<const Span> holes) {
  std::vector<Span> out{{(area.begin + kPage - 1) & ~(kPage - 1), area.end & ~(kPage - 1)}};
  for (Span hole : holes) {
    Span h{hole.begin & ~(kPage - 1), (hole.end + kPage - 1) & ~(kPage - 1)};
    std::vector<Span> next;
    for (Span s : out) {
      if (h.end <= s.begin || h.begin >= s.end) {
        next.push_back(s);
        continue;
      }
      if (s.begin < h.begin) next.push_back({s.begin, h.begin});
      if (h.end < s.end) next.push_back({h.end, s.end});
    }
    out = std::move(next);
  }
  std::erase_if(out, [](Span s) { return s.begin >= s.end; });
  return out;
}

uint32_t get32(std::span<const uint8_t> c, uint16_t at) {
  uint32_t v;
  std::memcpy(&v, c.data() + at, 4);
  return v;
}

}  // namespace

VfioPciDevice::VfioPciDevice(std::string name, std::shared_ptr<VfioDeviceTransport> device,
                             PciConfigSpace config, VfioPciOptions options)
    : name_(std::move(name)),
      device_(std::move(device)),
      config_(std::move(config)),
      options_(std::move(options)) {}

VfioPciDevice::~VfioPciDevice() = default;

Result<std::unique_ptr<VfioPciDevice>> VfioPciDevice::create(
    std::string name, std::shared_ptr<VfioDeviceTransport> device, InterruptManager& interrupts,
    VfioPciOptions options) {
  std::vector<uint8_t> config(pci::kConfigSpaceSize);
  IOASIS_TRY(device->region_read(VFIO_PCI_CONFIG_REGION_INDEX, 0, config));
  // The emulated part starts from the device's own identity so that reset() restores it.
  PciIds ids{static_cast<uint16_t>(get32(config, 0)), static_cast<uint16_t>(get32(config, 0) >> 16),
             get32(config, 8) >> 8, config[8]};
  std::unique_ptr<VfioPciDevice> d(new VfioPciDevice(std::move(name), std::move(device),
                                                     PciConfigSpace(ids), std::move(options)));
  d->intx_pin_ = config[pci::kInterruptPin] <= 4 ? config[pci::kInterruptPin] : 0;
  std::map<uint8_t, VfioRegionInfo> regions;  // the BARs' regions, asked for once
  IOASIS_TRY(d->setup_bars(config, &regions));
  IOASIS_TRY(d->setup_msix(config, interrupts));
  IOASIS_TRY(d->setup_masked_vectors());
  IOASIS_TRY(d->setup_error_irq());
  if (d->options_.mapper) IOASIS_TRY(d->setup_direct_areas(regions));
  spdlog::info(
      "{}: PCI {:04x}:{:04x}, {} BARs ({} pieces mapped into the guest), {} MSI-X vectors, {}",
      d->name_, ids.vendor_id, ids.device_id, d->config_.bars().size(), d->direct_.size(),
      d->msix_ ? d->msix_->vectors() : 0, d->msi_ ? "MSI" : "no MSI");
  return d;
}

Result<void> VfioPciDevice::setup_bars(std::span<const uint8_t> config,
                                       std::map<uint8_t, VfioRegionInfo>* regions) {
  for (uint8_t index = 0; index < pci::kBarCount; ++index) {
    IOASIS_ASSIGN_OR_RETURN(VfioRegionInfo info, device_->region_info(index));
    if (info.size == 0) continue;
    (*regions)[index] = info;
    uint32_t reg = get32(config, pci::kBar0 + index * 4);
    PciBar bar{index, std::bit_ceil(std::max<uint64_t>(info.size, 16)), PciBarKind::kMemory32,
               (reg & pci::kBarPrefetchable) != 0};
    if (reg & pci::kBarIo) {
      bar.kind = PciBarKind::kIo;
      bar.prefetchable = false;
    } else if ((reg & 0x6) == pci::kBarMem64) {
      bar.kind = PciBarKind::kMemory64;
    }
    IOASIS_TRY(config_.add_bar(bar));
    if (bar.is_64bit()) ++index;  // the upper half is not a BAR of its own
  }
  return {};
}

Result<void> VfioPciDevice::setup_msix(std::span<const uint8_t> config,
                                       InterruptManager& interrupts) {
  if (!(get32(config, pci::kCommand) >> 16 & pci::kStatusCapabilityList)) return {};
  uint16_t at = config[pci::kCapabilitiesPointer] & 0xfc;
  for (int hops = 0; at >= pci::kHeaderSize && at <= 0xf4 && hops < 48; ++hops) {
    uint32_t dword0 = get32(config, at);
    if (config[at] == pci::kCapIdMsix && !msix_) {
      MsixLayout layout{
          static_cast<uint8_t>(get32(config, at + 4) & 7), get32(config, at + 4) & ~7u,
          static_cast<uint8_t>(get32(config, at + 8) & 7), get32(config, at + 8) & ~7u};
      uint16_t vectors = static_cast<uint16_t>((dword0 >> 16 & kMsixTableSizeMask) + 1);
      IOASIS_ASSIGN_OR_RETURN(msix_, Msix::create(interrupts, vectors, layout));
      msix_cap_ = at;
    } else if (config[at] == pci::kCapIdMsi && !msi_) {
      auto control = static_cast<uint16_t>(dword0 >> 16);
      // A capability running past the standard header's capability area is the device lying.
      if (at + pci::msi_capability_size(control & pci::kMsiControl64Bit,
                                        control & pci::kMsiControlPerVectorMask) <=
          pci::kConfigSpaceSize) {
        IOASIS_ASSIGN_OR_RETURN(msi_, Msi::create(interrupts, at, control));
      }
    }
    at = config[at + 1] & 0xfc;
  }
  return {};
}

void VfioPciDevice::connect_msi() {
  // The MSI registers are ours; the device only learns which eventfd each vector signals.
  std::vector<int> eventfds = msi_->enabled_eventfds();
  auto r = device_->set_irqs(VFIO_PCI_MSI_IRQ_INDEX, 0, eventfds);
  if (!r.ok()) {
    spdlog::error("{}: {} MSI: {}", name_, eventfds.empty() ? "disabling" : "enabling",
                  r.error().message());
  }
}

Result<void> VfioPciDevice::setup_direct_areas(const std::map<uint8_t, VfioRegionInfo>& regions) {
  for (const PciBar& bar : config_.bars()) {
    if (bar.is_io()) continue;
    const VfioRegionInfo& info = regions.at(bar.index);
    if (!info.mmappable()) continue;
    std::vector<Span> holes;
    if (msix_) {
      const MsixLayout& l = msix_->layout();
      uint64_t vectors = msix_->vectors();
      if (l.table_bar == bar.index)
        holes.push_back({l.table_offset, l.table_offset + vectors * 16});
      if (l.pba_bar == bar.index) {
        holes.push_back({l.pba_offset, l.pba_offset + (vectors + 63) / 64 * 8});
      }
    }
    for (const auto& area : info.mmap_areas) {
      for (Span piece : whole_pages_outside({area.offset, area.offset + area.size}, holes)) {
        IOASIS_ASSIGN_OR_RETURN(MappedRegion host, device_->map_region(bar.index, piece.begin,
                                                                       piece.end - piece.begin));
        direct_.push_back({bar.index, piece.begin, info.writable(), std::move(host), nullptr});
      }
    }
  }
  return {};
}

void VfioPciDevice::bar_moved(uint8_t index, uint64_t, uint64_t new_address) {
  for (DirectArea& area : direct_) {
    if (area.bar != index) continue;
    area.guest.reset();
    // A BAR smaller than a page may sit off a page boundary; it stays trapped there.
    if (new_address == 0 || (new_address & (kPage - 1))) continue;
    auto mapped = options_.mapper->map(Gpa(new_address + area.offset),
                                       {area.host.data(), area.host.size()}, area.writable);
    if (!mapped) {
      spdlog::warn("{}: BAR {} +{:#x} stays trapped: {}", name_, index, area.offset,
                   mapped.error().message());
      continue;
    }
    area.guest = std::move(*mapped);
  }
}

uint64_t VfioPciDevice::direct_bytes(uint8_t index) const {
  uint64_t bytes = 0;
  for (const DirectArea& area : direct_) {
    if (area.bar == index && area.guest) bytes += area.host.size();
  }
  return bytes;
}

bool VfioPciDevice::emulated(uint16_t offset) const {
  return offset == pci::kCommand || (offset >= pci::kBar0 && offset < pci::kBarEnd) ||
         offset == kRomBar;
}

void VfioPciDevice::note_failure(const Error& error) {
  if (!failure_logged_.exchange(true)) {
    spdlog::error("{}: device failed, its registers now read as all ones: {}", name_,
                  error.message());
  }
}

uint32_t VfioPciDevice::device_read32(uint16_t offset) {
  uint32_t v = 0xffffffff;
  auto r = device_->region_read(VFIO_PCI_CONFIG_REGION_INDEX, offset,
                                {reinterpret_cast<uint8_t*>(&v), 4});
  if (!r.ok()) {
    note_failure(r.error());
    return 0xffffffff;
  }
  return v;
}

void VfioPciDevice::device_write(uint16_t offset, uint32_t value, uint8_t byte_enables) {
  // Contiguous runs of enabled bytes become one write each.
  for (unsigned lane = 0; lane < 4;) {
    if (!(byte_enables & (1u << lane))) {
      ++lane;
      continue;
    }
    unsigned end = lane;
    while (end < 4 && (byte_enables & (1u << end))) ++end;
    auto bytes = reinterpret_cast<const uint8_t*>(&value);
    auto r = device_->region_write(VFIO_PCI_CONFIG_REGION_INDEX, offset + lane,
                                   {bytes + lane, end - lane});
    if (!r.ok()) note_failure(r.error());
    lane = end;
  }
}

uint32_t VfioPciDevice::config_read(uint16_t offset) {
  if (offset == pci::kCommand) {
    // Command is ours, status is the device's.
    return config_.get16(pci::kCommand) | (device_read32(offset) & 0xffff0000);
  }
  if (emulated(offset)) return config_.read(offset);
  if (msi_ && msi_->contains(offset)) {
    return msi_->read(offset, offset == msi_->offset() ? device_read32(offset) : 0);
  }
  uint32_t v = device_read32(offset);
  // The interrupt line is the VMM's routing, not the device's.
  if (offset == pci::kInterruptLine) v = (v & ~0xffu) | interrupt_line_;
  if (msix_cap_ && offset == msix_cap_) {
    uint16_t control = static_cast<uint16_t>(v >> 16 & kMsixTableSizeMask) | msix_control_;
    v = (v & 0xffff) | static_cast<uint32_t>(control) << 16;
  }
  return v;
}

void VfioPciDevice::config_write(uint16_t offset, uint32_t value, uint8_t byte_enables) {
  if (offset == pci::kCommand) {
    config_.write(offset, value, byte_enables & 0x3);
    // The device needs bus mastering to do DMA; decoding stays with us, which traps the BARs.
    device_write(offset, value & pci::kCommandBusMaster, byte_enables & 0x3);
    return;
  }
  if (emulated(offset)) {
    config_.write(offset, value, byte_enables);
    return;
  }
  if (msi_ && msi_->contains(offset)) {
    if (msi_->write(offset, value, byte_enables)) connect_msi();
    return;
  }
  if (offset == pci::kInterruptLine && (byte_enables & 1)) {
    interrupt_line_ = static_cast<uint8_t>(value);  // scratch for the guest's drivers
    byte_enables &= 0xe;
  }
  if (msix_cap_ && offset == msix_cap_ && (byte_enables & 0x8)) {
    uint16_t control = static_cast<uint16_t>(value >> 16);
    write_msix_control(control & (Msix::kControlEnable | Msix::kControlFunctionMask));
    byte_enables &= 0x3;  // message control does not reach the device
  }
  if (byte_enables) device_write(offset, value, byte_enables);
}

void VfioPciDevice::write_msix_control(uint16_t control) {
  bool was_enabled = msix_control_ & Msix::kControlEnable;
  bool enable = control & Msix::kControlEnable;
  msix_control_ = control;
  if (!enable) {
    // Vectors are about to be masked by the disable; none is redirected on its own.
    std::lock_guard lock(irq_mu_);
    device_msix_on_ = false;
  }
  msix_->set_message_control(control);
  if (was_enabled != enable) connect_msix(enable);
}

void VfioPciDevice::bar_read(uint8_t index, uint64_t offset, std::span<uint8_t> data) {
  if (msix_ && msix_->bar_read(index, offset, data)) return;
  auto r = device_->region_read(index, offset, data);
  if (!r.ok()) {
    note_failure(r.error());
    std::memset(data.data(), 0xff, data.size());
  }
}

void VfioPciDevice::bar_write(uint8_t index, uint64_t offset, std::span<const uint8_t> data) {
  if (msix_ && msix_->bar_write(index, offset, data)) return;
  auto r = device_->region_write(index, offset, data);
  if (!r.ok()) note_failure(r.error());
}

void VfioPciDevice::reset() {
  if (msix_ && (msix_control_ & Msix::kControlEnable)) write_msix_control(0);
  if (msix_) msix_->reset();
  msix_control_ = 0;
  if (msi_ && !msi_->enabled_eventfds().empty()) {
    msi_->reset();
    connect_msi();
  }
  config_.reset();
  auto r = device_->reset();
  if (!r.ok()) spdlog::warn("{}: device reset: {}", name_, r.error().message());
  // An INTx masked at the device waits for an EOI that a reset guest will never send.
  if (intx_line_) (void)device_->unmask_irq(VFIO_PCI_INTX_IRQ_INDEX);
}

}  // namespace ioasis::devices
