#include "devices/pci/host_bridge.h"

#include <algorithm>

namespace ioasis::devices {
namespace {

// Intel's ID for a virtual PCIe host bridge, as other VMMs present it; guests need no driver.
constexpr uint16_t kVendorIntel = 0x8086;
constexpr uint16_t kDeviceVirtualHostBridge = 0x0d57;
constexpr uint32_t kClassHostBridge = 0x060000;

}  // namespace

PciHostBridge::PciHostBridge()
    : config_(PciIds{.vendor_id = kVendorIntel,
                     .device_id = kDeviceVirtualHostBridge,
                     .class_code = kClassHostBridge}) {}

void PciHostBridge::bar_read(uint8_t, uint64_t, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0xff);
}

}  // namespace ioasis::devices
