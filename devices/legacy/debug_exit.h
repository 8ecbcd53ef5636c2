// The isa-debug-exit port (0xf4, four bytes wide): a guest ends the VM by writing a value to
// it, and the VMM exits with that value. Tests and the test guest report pass/fail this way.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "devices/bus/bus.h"

namespace ioasis::devices {

class DebugExit : public BusDevice {
 public:
  static constexpr uint64_t kPortCount = 4;
  using ExitHandler = std::function<void(uint32_t value)>;

  explicit DebugExit(ExitHandler on_exit) : on_exit_(std::move(on_exit)) {}

  void read(uint64_t offset, std::span<uint8_t> data) override;
  // The value is the little-endian number written, as wide as the access (outb, outw or outl).
  void write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  ExitHandler on_exit_;
};

}  // namespace ioasis::devices
