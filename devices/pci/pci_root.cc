#include "devices/pci/pci_root.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "base/log.h"
#include "devices/pci/host_bridge.h"
#include "devices/pci/pci_regs.h"

namespace ioasis::devices {

using namespace pci;  // NOLINT: register names read better unqualified here

namespace {

constexpr uint64_t kIoSpaceEnd = 0x10000;
// Memory BARs get at least a page so that each can be mapped into the guest on its own.
constexpr uint64_t kMinMemoryAlignment = 4096;

uint16_t bar_offset(uint8_t index) { return static_cast<uint16_t>(kBar0 + 4 * index); }

// Routes bus accesses inside one BAR to the device that owns it.
class BarRegion : public BusDevice {
 public:
  BarRegion(std::shared_ptr<PciDevice> device, uint8_t index)
      : device_(std::move(device)), index_(index) {}
  void read(uint64_t offset, std::span<uint8_t> data) override {
    device_->bar_read(index_, offset, data);
  }
  void write(uint64_t offset, std::span<const uint8_t> data) override {
    device_->bar_write(index_, offset, data);
  }

 private:
  std::shared_ptr<PciDevice> device_;
  uint8_t index_;
};

uint64_t align_up(uint64_t value, uint64_t align) { return (value + align - 1) & ~(align - 1); }

// A BAR register (or the upper half of a 64-bit one) written with all ones in every enabled
// byte: the sizing protocol, not a move.
bool is_sizing_write(uint32_t value, uint8_t byte_enables) {
  uint32_t mask = 0;
  for (int i = 0; i < 4; ++i) {
    if (byte_enables & (1u << i)) mask |= 0xffu << (8 * i);
  }
  return mask != 0 && (value & mask) == mask;
}

}  // namespace

struct PciRoot::Function {
  std::shared_ptr<PciDevice> device;
  std::vector<PciBar> bars;
  std::array<uint64_t, kBarCount> assigned{};  // firmware's choice, restored on reset
  std::array<uint64_t, kBarCount> mapped{};    // where the bus decodes it now; 0: nowhere
  std::array<std::shared_ptr<BarRegion>, kBarCount> regions;
};

std::string PciAddress::to_string() const {
  return fmt::format("{:02x}:{:02x}.{}", bus, device, function);
}

PciRoot::PciRoot(Bus& mmio_bus, Bus& pio_bus, const PciWindows& windows)
    : mmio_bus_(mmio_bus),
      pio_bus_(pio_bus),
      mmio32_{windows.mmio32_start, windows.mmio32_start + windows.mmio32_size},
      mmio64_{windows.mmio64_start, windows.mmio64_start + windows.mmio64_size},
      io_{windows.io_start, std::min(windows.io_start + windows.io_size, kIoSpaceEnd)} {
  auto bridge = add_function(std::make_shared<PciHostBridge>(), 0, 0);
  if (!bridge.ok()) spdlog::error("PCI host bridge: {}", bridge.error().message());
}

PciRoot::~PciRoot() {
  std::lock_guard lock(mu_);
  for (auto& fn : functions_) {
    if (fn) unmap_all(*fn);
  }
}

Result<PciAddress> PciRoot::add_device(std::shared_ptr<PciDevice> device) {
  std::lock_guard lock(mu_);
  uint8_t slot = 1;
  while (slot < kSlots && functions_[slot * kFunctions]) ++slot;
  if (slot == kSlots) return Error(Errc::kResourceExhausted, "PCI bus 0 has no free slot");
  return add_function_locked(std::move(device), slot, 0);
}

Result<PciAddress> PciRoot::add_function(std::shared_ptr<PciDevice> device, uint8_t slot,
                                         uint8_t function) {
  std::lock_guard lock(mu_);
  return add_function_locked(std::move(device), slot, function);
}

Result<PciAddress> PciRoot::add_function_locked(std::shared_ptr<PciDevice> device, uint8_t slot,
                                                uint8_t function) {
  if (!device || slot >= kSlots || function >= kFunctions) {
    return Error(Errc::kInvalidArgument, "PCI function: bad slot or function number");
  }
  PciAddress address{0, slot, function};
  auto& entry = functions_[address.devfn()];
  if (entry) {
    return Error(Errc::kAlreadyExists, "PCI function " + address.to_string() + " is taken");
  }
  auto fn = std::make_unique<Function>();
  fn->device = std::move(device);
  fn->bars = fn->device->bars();
  for (const PciBar& bar : fn->bars) {
    if (bar.index >= kBarCount) return Error(Errc::kInvalidArgument, "PCI BAR index out of range");
    fn->regions[bar.index] = std::make_shared<BarRegion>(fn->device, bar.index);
  }
  if (auto r = assign_bars(*fn); !r.ok()) {
    return std::move(r).error().context("PCI function " + address.to_string());
  }
  program_bars(*fn);
  entry = std::move(fn);
  return address;
}

Result<void> PciRoot::assign_bars(Function& fn) {
  // Largest first, so natural alignment wastes no space between them.
  std::vector<PciBar> order = fn.bars;
  std::stable_sort(order.begin(), order.end(),
                   [](const PciBar& a, const PciBar& b) { return a.size > b.size; });
  Window saved[] = {mmio32_, mmio64_, io_};
  for (const PciBar& bar : order) {
    Window* window = &mmio32_;
    if (bar.is_io()) {
      window = &io_;
    } else if (bar.is_64bit() && mmio64_.end > mmio64_.next) {
      window = &mmio64_;
    }
    uint64_t align = bar.is_io() ? bar.size : std::max(bar.size, kMinMemoryAlignment);
    uint64_t start = align_up(window->next, align);
    if (start < window->next || start > window->end || window->end - start < bar.size) {
      mmio32_ = saved[0], mmio64_ = saved[1], io_ = saved[2];
      return Error(Errc::kResourceExhausted,
                   fmt::format("no room for BAR {} of {:#x} bytes", bar.index, bar.size));
    }
    fn.assigned[bar.index] = start;
    window->next = start + bar.size;
  }
  return {};
}

void PciRoot::program_bars(Function& fn) {
  uint16_t enable = 0;
  for (const PciBar& bar : fn.bars) {
    uint64_t address = fn.assigned[bar.index];
    fn.device->config_write(bar_offset(bar.index), static_cast<uint32_t>(address), 0xf);
    if (bar.is_64bit()) {
      fn.device->config_write(bar_offset(bar.index + 1), static_cast<uint32_t>(address >> 32), 0xf);
    }
    enable |= bar.is_io() ? kCommandIo : kCommandMemory;
  }
  if (enable) {
    uint16_t command = static_cast<uint16_t>(fn.device->config_read(kCommand));
    fn.device->config_write(kCommand, command | enable, 0x3);
  }
  sync_bars(fn);
}

uint64_t PciRoot::decoded_address(Function& fn, const PciBar& bar, uint16_t command) {
  if (!(command & (bar.is_io() ? kCommandIo : kCommandMemory))) return 0;
  uint32_t low = fn.device->config_read(bar_offset(bar.index));
  uint64_t address = low & ~(bar.is_io() ? kBarIoFlagsMask : kBarMemFlagsMask);
  if (bar.is_64bit()) {
    address |= uint64_t{fn.device->config_read(bar_offset(bar.index + 1))} << 32;
  }
  address &= ~(bar.size - 1);
  // Address 0 is how guests park a BAR they do not use; I/O BARs must fit in the 64 KiB space.
  if (address == 0 || !range_fits(address, bar.size)) return 0;
  if (bar.is_io() && address + bar.size > kIoSpaceEnd) return 0;
  return address;
}

void PciRoot::sync_bars(Function& fn, uint32_t sizing) {
  auto command = static_cast<uint16_t>(fn.device->config_read(kCommand));
  for (const PciBar& bar : fn.bars) {
    uint64_t want = decoded_address(fn, bar, command);
    uint64_t have = fn.mapped[bar.index];
    if (want == have || (sizing & (1u << bar.index))) continue;
    Bus& bus = bar.is_io() ? pio_bus_ : mmio_bus_;
    if (have) {
      if (auto r = bus.remove(have); !r.ok()) spdlog::error("PCI BAR: {}", r.error().message());
      fn.mapped[bar.index] = 0;
    }
    if (want) {
      if (auto r = bus.insert(fn.regions[bar.index], want, bar.size); r.ok()) {
        fn.mapped[bar.index] = want;
      } else {
        // Overlapping BARs are the guest's mistake; the BAR stays off the bus until moved.
        spdlog::warn("PCI BAR {} at {:#x} not decoded: {}", bar.index, want, r.error().message());
      }
    }
    if (fn.mapped[bar.index] != have) fn.device->bar_moved(bar.index, have, fn.mapped[bar.index]);
  }
}

void PciRoot::unmap_all(Function& fn) {
  for (const PciBar& bar : fn.bars) {
    uint64_t have = fn.mapped[bar.index];
    if (!have) continue;
    Bus& bus = bar.is_io() ? pio_bus_ : mmio_bus_;
    if (auto r = bus.remove(have); !r.ok()) spdlog::error("PCI BAR: {}", r.error().message());
    fn.mapped[bar.index] = 0;
    fn.device->bar_moved(bar.index, have, 0);
  }
}

PciRoot::Function* PciRoot::find(uint8_t bus, uint8_t devfn) {
  if (bus != 0) return nullptr;
  return functions_[devfn].get();
}

bool PciRoot::slot_has_other_functions(uint8_t devfn) const {
  uint8_t first = devfn & ~uint8_t{kFunctions - 1};
  for (uint8_t f = 1; f < kFunctions; ++f) {
    if (functions_[first + f]) return true;
  }
  return false;
}

uint32_t PciRoot::config_read(uint8_t bus, uint8_t devfn, uint16_t offset) {
  std::lock_guard lock(mu_);
  Function* fn = find(bus, devfn);
  if (!fn || offset % 4 || offset + 4u > fn->device->config_size()) return 0xffffffff;
  uint32_t value = fn->device->config_read(offset);
  // The multi-function bit belongs to the slot, so the root sets it rather than each device.
  if (offset == (kHeaderType & ~3) && (devfn & (kFunctions - 1)) == 0 &&
      slot_has_other_functions(devfn)) {
    value |= uint32_t{kHeaderTypeMultiFunction} << (8 * (kHeaderType % 4));
  }
  return value;
}

void PciRoot::config_write(uint8_t bus, uint8_t devfn, uint16_t offset, uint32_t value,
                           uint8_t byte_enables) {
  std::lock_guard lock(mu_);
  Function* fn = find(bus, devfn);
  if (!fn || offset % 4 || offset + 4u > fn->device->config_size()) return;
  fn->device->config_write(offset, value, byte_enables);
  bool command = offset == kCommand && (byte_enables & 0x3);
  bool bar = offset >= kBar0 && offset < kBarEnd;
  if (!command && !bar) return;
  uint32_t sizing = 0;
  if (bar && is_sizing_write(value, byte_enables)) {
    int reg = (offset - kBar0) / 4;
    for (const PciBar& b : fn->bars) {
      if (b.index == reg || (b.is_64bit() && b.index + 1 == reg)) sizing |= 1u << b.index;
    }
  }
  sync_bars(*fn, sizing);
}

void PciRoot::reset() {
  std::lock_guard lock(mu_);
  for (auto& fn : functions_) {
    if (!fn) continue;
    unmap_all(*fn);
    fn->device->reset();
    program_bars(*fn);
  }
}

}  // namespace ioasis::devices
