// The MSI capability (PCI LB 3.0 section 6.8.1) as a VMM emulates it for a passthrough function:
// the guest's address, data, enable, multiple-message enable and per-vector mask bits live here,
// and each vector the guest enables is an MsiRoute whose irqfd the device signals. The
// capability's layout (32- or 64-bit address, per-vector masking, how many vectors) is the
// device's, read once from its message control.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "base/result.h"
#include "devices/interrupt.h"

namespace ioasis::devices {

class Msi {
 public:
  static constexpr uint16_t kMaxVectors = 32;

  // `offset` is where the capability sits in config space; `control` its message control as
  // the device reports it (only the read-only layout bits are used).
  static Result<std::unique_ptr<Msi>> create(InterruptManager& interrupts, uint16_t offset,
                                             uint16_t control);

  uint16_t offset() const { return offset_; }
  uint16_t size() const;
  bool contains(uint16_t offset) const { return offset >= offset_ && offset < offset_ + size(); }

  // The dword at `offset` (dword-aligned, inside the capability). `header` is the device's own
  // first dword, whose capability id and next pointer are kept.
  uint32_t read(uint16_t offset, uint32_t header) const;
  // A guest write; returns true when the vectors the device should signal changed (MSI turned on
  // or off, or another number of vectors enabled).
  bool write(uint16_t offset, uint32_t value, uint8_t byte_enables);
  // The irqfds of the enabled vectors, in order; empty while MSI is off.
  std::vector<int> enabled_eventfds() const;
  // Power-on state: off, no message, nothing masked.
  void reset();

 private:
  Msi(std::vector<std::unique_ptr<MsiRoute>> routes, uint16_t offset, uint16_t control);
  uint16_t enabled_vectors_locked() const;
  void push_locked();

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<MsiRoute>> routes_;  // one per vector the device can signal
  uint16_t offset_;
  bool is64_;
  bool maskable_;
  // The capability's bytes as the guest sees them, and which bits the guest may change.
  std::vector<uint8_t> regs_;
  std::vector<uint8_t> writable_;
};

}  // namespace ioasis::devices
