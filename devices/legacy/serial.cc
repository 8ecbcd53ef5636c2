#include "devices/legacy/serial.h"

#include <algorithm>

namespace ioasis::devices {
namespace {

// Register offsets.
constexpr uint64_t kData = 0;  // RBR / THR / DLL
constexpr uint64_t kIer = 1;   // IER / DLM
constexpr uint64_t kIir = 2;   // IIR / FCR
constexpr uint64_t kLcr = 3;
constexpr uint64_t kMcr = 4;
constexpr uint64_t kLsr = 5;
constexpr uint64_t kMsr = 6;
constexpr uint64_t kScr = 7;

// IER: the four interrupt sources; the upper nibble is reserved and reads as zero (Linux's
// XScale probe relies on bit 6 not sticking).
constexpr uint8_t kIerRxData = 0x01;
constexpr uint8_t kIerThrEmpty = 0x02;
constexpr uint8_t kIerLineStatus = 0x04;
constexpr uint8_t kIerModemStatus = 0x08;
constexpr uint8_t kIerMask = 0x0f;

// IIR interrupt identification, in priority order (datasheet table IV).
constexpr uint8_t kIirNone = 0x01;
constexpr uint8_t kIirLineStatus = 0x06;
constexpr uint8_t kIirRxData = 0x04;
constexpr uint8_t kIirThrEmpty = 0x02;
constexpr uint8_t kIirModemStatus = 0x00;
constexpr uint8_t kIirFifoEnabled = 0xc0;

constexpr uint8_t kFcrEnable = 0x01;
constexpr uint8_t kFcrClearRx = 0x02;

constexpr uint8_t kLcrDlab = 0x80;

constexpr uint8_t kMcrDtr = 0x01;
constexpr uint8_t kMcrRts = 0x02;
constexpr uint8_t kMcrOut1 = 0x04;
constexpr uint8_t kMcrOut2 = 0x08;
constexpr uint8_t kMcrLoop = 0x10;
constexpr uint8_t kMcrMask = 0x1f;

constexpr uint8_t kLsrDataReady = 0x01;
constexpr uint8_t kLsrOverrun = 0x02;
constexpr uint8_t kLsrThrEmpty = 0x20;
constexpr uint8_t kLsrTxEmpty = 0x40;

constexpr uint8_t kMsrDcts = 0x01;
constexpr uint8_t kMsrDdsr = 0x02;
constexpr uint8_t kMsrTeri = 0x04;
constexpr uint8_t kMsrDdcd = 0x08;
constexpr uint8_t kMsrCts = 0x10;
constexpr uint8_t kMsrDsr = 0x20;
constexpr uint8_t kMsrRi = 0x40;
constexpr uint8_t kMsrDcd = 0x80;

}  // namespace

Serial::Serial(std::shared_ptr<IrqLine> irq, std::shared_ptr<SerialOutput> output)
    : irq_(std::move(irq)), output_(std::move(output)) {}

void Serial::read(uint64_t offset, std::span<uint8_t> data) {
  // The UART's registers are bytes; wider accesses are not decoded by real hardware either.
  if (data.size() != 1 || offset >= kPortCount) {
    std::fill(data.begin(), data.end(), 0xff);
    return;
  }
  std::lock_guard lock(mu_);
  data[0] = read_register(offset);
  update_irq();
}

void Serial::write(uint64_t offset, std::span<const uint8_t> data) {
  if (data.size() != 1 || offset >= kPortCount) return;
  std::lock_guard lock(mu_);
  write_register(offset, data[0]);
  update_irq();
}

size_t Serial::enqueue_input(std::span<const uint8_t> bytes) {
  std::lock_guard lock(mu_);
  size_t n = std::min(bytes.size(), kRxFifoCapacity - rx_.size());
  rx_.insert(rx_.end(), bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(n));
  update_irq();
  return n;
}

size_t Serial::rx_space() const {
  std::lock_guard lock(mu_);
  return kRxFifoCapacity - rx_.size();
}

uint8_t Serial::read_register(uint64_t offset) {
  bool dlab = lcr_ & kLcrDlab;
  switch (offset) {
    case kData: {
      if (dlab) return dll_;
      if (rx_.empty()) return 0;
      uint8_t byte = rx_.front();
      rx_.pop_front();
      return byte;
    }
    case kIer:
      return dlab ? dlm_ : ier_;
    case kIir:
      return read_iir();
    case kLcr:
      return lcr_;
    case kMcr:
      return mcr_;
    case kLsr: {
      uint8_t value = lsr();
      overrun_ = false;  // error bits clear on read
      return value;
    }
    case kMsr: {
      uint8_t value = modem_status_lines() | msr_delta_;
      msr_delta_ = 0;
      return value;
    }
    case kScr:
      return scr_;
  }
  return 0xff;
}

void Serial::write_register(uint64_t offset, uint8_t value) {
  bool dlab = lcr_ & kLcrDlab;
  switch (offset) {
    case kData:
      if (dlab) {
        dll_ = value;
      } else {
        transmit(value);
      }
      break;
    case kIer:
      if (dlab) {
        dlm_ = value;
      } else {
        write_ier(value);
      }
      break;
    case kIir:
      write_fcr(value);
      break;
    case kLcr:
      lcr_ = value;
      break;
    case kMcr:
      write_mcr(value);
      break;
    case kScr:
      scr_ = value;
      break;
    default:  // LSR and MSR are read-only; writes to them are factory test modes we lack
      break;
  }
}

void Serial::write_ier(uint8_t value) {
  uint8_t enabled = static_cast<uint8_t>(value & ~ier_);
  ier_ = value & kIerMask;
  // Enabling the THR-empty interrupt while THR is empty raises it at once; Linux's startup
  // check (UART_BUG_THRE) depends on this.
  if (enabled & kIerThrEmpty) thr_interrupt_ = true;
}

void Serial::write_fcr(uint8_t value) {
  bool enable = value & kFcrEnable;
  // Switching the FIFOs on or off resets them (datasheet, FCR bit 0).
  if (enable != fifo_enabled_ || (value & kFcrClearRx)) rx_.clear();
  fifo_enabled_ = enable;
}

void Serial::write_mcr(uint8_t value) {
  uint8_t before = modem_status_lines();
  mcr_ = value & kMcrMask;
  uint8_t after = modem_status_lines();
  uint8_t changed = before ^ after;
  if (changed & kMsrCts) msr_delta_ |= kMsrDcts;
  if (changed & kMsrDsr) msr_delta_ |= kMsrDdsr;
  if (changed & kMsrDcd) msr_delta_ |= kMsrDdcd;
  // TERI flags only the trailing edge of RI.
  if ((before & kMsrRi) && !(after & kMsrRi)) msr_delta_ |= kMsrTeri;
}

void Serial::transmit(uint8_t byte) {
  if (mcr_ & kMcrLoop) {
    receive(byte);
  } else if (output_) {
    output_->write(std::span<const uint8_t>(&byte, 1));
  }
  // The byte left at once, so THR is empty again: a fresh THR-empty event.
  thr_interrupt_ = true;
}

void Serial::receive(uint8_t byte) {
  if (rx_.size() >= kRxFifoCapacity) {
    overrun_ = true;
    return;
  }
  rx_.push_back(byte);
}

uint8_t Serial::modem_status_lines() const {
  if (!(mcr_ & kMcrLoop)) return kMsrDcd | kMsrDsr | kMsrCts;  // a peer that is always ready
  // Loopback wires the modem outputs back to the inputs (datasheet, MCR bit 4).
  uint8_t lines = 0;
  if (mcr_ & kMcrRts) lines |= kMsrCts;
  if (mcr_ & kMcrDtr) lines |= kMsrDsr;
  if (mcr_ & kMcrOut1) lines |= kMsrRi;
  if (mcr_ & kMcrOut2) lines |= kMsrDcd;
  return lines;
}

uint8_t Serial::read_iir() {
  uint8_t id = pending_interrupt();
  // Reading IIR acknowledges a THR-empty interrupt when it is the one reported.
  if (id == kIirThrEmpty) thr_interrupt_ = false;
  return id | (fifo_enabled_ ? kIirFifoEnabled : 0);
}

uint8_t Serial::lsr() const {
  uint8_t value = kLsrThrEmpty | kLsrTxEmpty;
  if (!rx_.empty()) value |= kLsrDataReady;
  if (overrun_) value |= kLsrOverrun;
  return value;
}

uint8_t Serial::pending_interrupt() const {
  if ((ier_ & kIerLineStatus) && overrun_) return kIirLineStatus;
  if ((ier_ & kIerRxData) && !rx_.empty()) return kIirRxData;
  if ((ier_ & kIerThrEmpty) && thr_interrupt_) return kIirThrEmpty;
  if ((ier_ & kIerModemStatus) && msr_delta_) return kIirModemStatus;
  return kIirNone;
}

void Serial::update_irq() {
  bool level = pending_interrupt() != kIirNone;
  if (level == irq_level_) return;
  irq_level_ = level;
  if (irq_) irq_->set_level(level);
}

}  // namespace ioasis::devices
