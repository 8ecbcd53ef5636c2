// The ways a PC guest asks to be reset or powered off:
// - the reset control register at 0xcf9 (PIIX/ICH chipsets), Linux's reboot=pci;
// - the i8042 keyboard controller's "pulse reset line" command 0xfe, Linux's default reboot;
// - the ACPI hardware-reduced sleep control register (FADT SLEEP_CONTROL_REG), which Linux
//   writes with SLP_TYP = \_S5 and SLP_EN to power off. The FADT also names this port as
//   SLEEP_STATUS_REG, so reads return the sleep status.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <span>

#include "devices/bus/bus.h"

namespace ioasis::devices {

using ResetHandler = std::function<void()>;

// One byte at layout::kPortResetControl.
class ResetControl : public BusDevice {
 public:
  static constexpr uint64_t kPortCount = 1;
  explicit ResetControl(ResetHandler on_reset) : on_reset_(std::move(on_reset)) {}

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  ResetHandler on_reset_;
  std::mutex mu_;
  uint8_t value_ = 0;
};

// Five ports at layout::kPortI8042 (0x60 data ... 0x64 status/command). No keyboard or mouse is
// attached; the controller answers its own commands so that a probing guest does not wait for
// replies that never come.
class I8042 : public BusDevice {
 public:
  static constexpr uint64_t kPortCount = 5;
  explicit I8042(ResetHandler on_reset) : on_reset_(std::move(on_reset)) {}

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  void command(uint8_t cmd);
  void write_data(uint8_t value);
  void reply(uint8_t value);

  ResetHandler on_reset_;
  std::mutex mu_;
  uint8_t ctr_ = 0x65;  // keyboard IRQ on, system flag, mouse port off, scancode translation
  uint8_t output_ = 0;
  bool output_full_ = false;
  bool last_was_command_ = false;
  uint8_t pending_command_ = 0;  // a command that takes a data byte on port 0x60
};

// One byte at layout::kPortSleepControl.
class SleepControl : public BusDevice {
 public:
  static constexpr uint64_t kPortCount = 1;
  using PowerOffHandler = std::function<void()>;
  explicit SleepControl(PowerOffHandler on_power_off) : on_power_off_(std::move(on_power_off)) {}

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  PowerOffHandler on_power_off_;
};

}  // namespace ioasis::devices
