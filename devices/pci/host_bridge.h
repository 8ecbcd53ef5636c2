// The host bridge at 00.0. Guests look for it: Linux's type 1 probe checks that some function
// on bus 0 has the host bridge class before trusting port 0xcf8.
#pragma once

#include "devices/pci/config_space.h"
#include "devices/pci/pci_device.h"

namespace ioasis::devices {

class PciHostBridge : public PciDevice {
 public:
  PciHostBridge();

  uint32_t config_read(uint16_t offset) override { return config_.read(offset); }
  void config_write(uint16_t offset, uint32_t value, uint8_t byte_enables) override {
    config_.write(offset, value, byte_enables);
  }
  std::vector<PciBar> bars() const override { return {}; }
  void bar_read(uint8_t, uint64_t, std::span<uint8_t> data) override;
  void bar_write(uint8_t, uint64_t, std::span<const uint8_t>) override {}
  void reset() override { config_.reset(); }

 private:
  PciConfigSpace config_;
};

}  // namespace ioasis::devices
