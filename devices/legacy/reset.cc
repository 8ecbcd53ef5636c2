#include "devices/legacy/reset.h"

#include <algorithm>

#include "base/log.h"
#include "vmm/layout.h"

namespace ioasis::devices {
namespace {

// 0xcf9 (Intel ICH9 datasheet, "Reset Control Register"): SYS_RST selects a hard reset, and
// setting RST_CPU starts it. Linux writes 0x02 then 0x06.
constexpr uint8_t kRcSysReset = 0x02;
constexpr uint8_t kRcResetCpu = 0x04;
constexpr uint8_t kRcFullReset = 0x08;

// i8042 status register bits.
constexpr uint8_t kStatusOutputFull = 0x01;
constexpr uint8_t kStatusSystemFlag = 0x04;
constexpr uint8_t kStatusCommand = 0x08;
constexpr uint8_t kStatusUnlocked = 0x10;

// i8042 controller commands.
constexpr uint8_t kCmdReadCtr = 0x20;
constexpr uint8_t kCmdWriteCtr = 0x60;
constexpr uint8_t kCmdDisableAux = 0xa7;
constexpr uint8_t kCmdEnableAux = 0xa8;
constexpr uint8_t kCmdTestAux = 0xa9;
constexpr uint8_t kCmdSelfTest = 0xaa;
constexpr uint8_t kCmdTestKbd = 0xab;
constexpr uint8_t kCmdDisableKbd = 0xad;
constexpr uint8_t kCmdEnableKbd = 0xae;
constexpr uint8_t kCmdReadOutputPort = 0xd0;
constexpr uint8_t kCmdWriteOutputPort = 0xd1;
constexpr uint8_t kCmdPulseReset = 0xfe;

constexpr uint8_t kCtrKbdDisabled = 0x10;
constexpr uint8_t kCtrAuxDisabled = 0x20;
constexpr uint8_t kSelfTestPassed = 0x55;
constexpr uint8_t kPortTestPassed = 0x00;
constexpr uint8_t kOutputPortIdle = 0x03;  // reset line released, A20 enabled

constexpr uint64_t kI8042Data = 0;
constexpr uint64_t kI8042Command = 4;

// ACPI 6.5 section 4.8.3.7, Sleep Control Register.
constexpr uint8_t kSlpEn = 0x20;
constexpr uint8_t kSlpTypShift = 2;
constexpr uint8_t kSlpTypMask = 0x07;

}  // namespace

void ResetControl::read(uint64_t, std::span<uint8_t> data) {
  std::lock_guard lock(mu_);
  std::fill(data.begin(), data.end(), value_);
}

void ResetControl::write(uint64_t offset, std::span<const uint8_t> data) {
  if (offset != 0 || data.size() != 1) return;
  uint8_t value = data[0];
  {
    std::lock_guard lock(mu_);
    value_ = value & (kRcSysReset | kRcFullReset);  // RST_CPU is self-clearing
  }
  if ((value & (kRcSysReset | kRcResetCpu)) == (kRcSysReset | kRcResetCpu)) {
    spdlog::info("guest requested reset through port 0xcf9");
    if (on_reset_) on_reset_();
  }
}

void I8042::read(uint64_t offset, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0);
  if (data.size() != 1) return;
  std::lock_guard lock(mu_);
  if (offset == kI8042Data) {
    data[0] = output_;
    output_full_ = false;
  } else if (offset == kI8042Command) {
    data[0] = kStatusSystemFlag | kStatusUnlocked;
    if (output_full_) data[0] |= kStatusOutputFull;
    if (last_was_command_) data[0] |= kStatusCommand;
  }
}

void I8042::write(uint64_t offset, std::span<const uint8_t> data) {
  if (data.size() != 1) return;
  bool reset = false;
  {
    std::lock_guard lock(mu_);
    if (offset == kI8042Command) {
      last_was_command_ = true;
      reset = data[0] == kCmdPulseReset;
      command(data[0]);
    } else if (offset == kI8042Data) {
      last_was_command_ = false;
      write_data(data[0]);
    }
  }
  if (reset) {
    spdlog::info("guest requested reset through the i8042");
    if (on_reset_) on_reset_();
  }
}

void I8042::command(uint8_t cmd) {
  pending_command_ = 0;
  switch (cmd) {
    case kCmdReadCtr:
      reply(ctr_);
      break;
    case kCmdWriteCtr:
    case kCmdWriteOutputPort:
      pending_command_ = cmd;
      break;
    case kCmdDisableAux:
      ctr_ |= kCtrAuxDisabled;
      break;
    case kCmdEnableAux:
      ctr_ &= static_cast<uint8_t>(~kCtrAuxDisabled);
      break;
    case kCmdDisableKbd:
      ctr_ |= kCtrKbdDisabled;
      break;
    case kCmdEnableKbd:
      ctr_ &= static_cast<uint8_t>(~kCtrKbdDisabled);
      break;
    case kCmdSelfTest:
      reply(kSelfTestPassed);
      break;
    case kCmdTestAux:
    case kCmdTestKbd:
      reply(kPortTestPassed);
      break;
    case kCmdReadOutputPort:
      reply(kOutputPortIdle);
      break;
    default:  // includes kCmdPulseReset, handled by the caller outside the lock
      break;
  }
}

void I8042::write_data(uint8_t value) {
  if (pending_command_ == kCmdWriteCtr) ctr_ = value;
  // Bytes for the output port or for a keyboard that is not there are dropped.
  pending_command_ = 0;
}

void I8042::reply(uint8_t value) {
  output_ = value;
  output_full_ = true;
}

void SleepControl::read(uint64_t, std::span<uint8_t> data) {
  // Sleep status: WAK_STS stays clear because the VM never sleeps and wakes.
  std::fill(data.begin(), data.end(), 0);
}

void SleepControl::write(uint64_t offset, std::span<const uint8_t> data) {
  if (offset != 0 || data.size() != 1) return;
  uint8_t value = data[0];
  if (!(value & kSlpEn)) return;  // e.g. clearing WAK_STS through the shared status register
  uint8_t type = (value >> kSlpTypShift) & kSlpTypMask;
  if (type == layout::kSleepTypeS5) {
    spdlog::info("guest requested power-off (S5)");
    if (on_power_off_) on_power_off_();
  } else {
    spdlog::warn("guest requested unsupported sleep type {}", type);
  }
}

}  // namespace ioasis::devices
