// A 16550A-compatible 8250 UART (COM1). Transmission is instantaneous: every byte written to THR
// goes straight to the output sink, so THR and the transmitter are always empty. Received bytes
// come from the host through enqueue_input() and wait in a FIFO until the guest reads RBR.
//
// Register map (offset from the base port), per the PC16550D datasheet, table II:
//   0 RBR (read) / THR (write); DLL when LCR.DLAB   4 MCR
//   1 IER; DLM when LCR.DLAB                       5 LSR
//   2 IIR (read) / FCR (write)                     6 MSR
//   3 LCR                                          7 SCR
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>

#include "devices/bus/bus.h"
#include "devices/interrupt.h"
#include "devices/legacy/serial_output.h"

namespace ioasis::devices {

class Serial : public BusDevice {
 public:
  static constexpr uint64_t kPortCount = 8;
  // Larger than the 16550A's 16-byte FIFO so a host paste is not cut short; the guest cannot
  // tell the difference because it drains the FIFO until LSR.DR clears.
  static constexpr size_t kRxFifoCapacity = 64;

  // `irq` is the level-triggered line (IRQ 4 for COM1); `output` may be null to discard output.
  Serial(std::shared_ptr<IrqLine> irq, std::shared_ptr<SerialOutput> output);

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  // Queues host input for the guest and raises the receive interrupt. Returns how many bytes
  // fitted; the rest is the caller's to retry once the guest has drained the FIFO.
  size_t enqueue_input(std::span<const uint8_t> bytes);
  size_t rx_space() const;

 private:
  uint8_t read_register(uint64_t offset);
  void write_register(uint64_t offset, uint8_t value);
  void write_ier(uint8_t value);
  void write_fcr(uint8_t value);
  void write_mcr(uint8_t value);
  void transmit(uint8_t byte);
  // Receives one byte into the FIFO, flagging an overrun when it is full.
  void receive(uint8_t byte);
  uint8_t modem_status_lines() const;
  uint8_t read_iir();
  uint8_t lsr() const;
  // The IIR interrupt identification (bits 3:0) of the highest-priority enabled interrupt.
  uint8_t pending_interrupt() const;
  void update_irq();

  std::shared_ptr<IrqLine> irq_;
  std::shared_ptr<SerialOutput> output_;

  mutable std::mutex mu_;
  std::deque<uint8_t> rx_;
  uint8_t ier_ = 0;
  uint8_t lcr_ = 0;
  uint8_t mcr_ = 0;
  uint8_t scr_ = 0;
  uint8_t dll_ = 1;  // divisor 1: 115200 baud
  uint8_t dlm_ = 0;
  uint8_t msr_delta_ = 0;  // MSR bits 3:0, cleared when the guest reads MSR
  bool fifo_enabled_ = false;
  bool overrun_ = false;
  bool thr_interrupt_ = false;  // THR-empty event not yet acknowledged by an IIR read
  bool irq_level_ = false;
};

}  // namespace ioasis::devices
