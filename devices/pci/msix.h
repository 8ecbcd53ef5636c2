// MSI-X for emulated PCI functions (PCI LB 3.0 section 6.8.2): the capability, the vector table
// and the pending bit array (PBA), with each vector backed by an MsiRoute.
//
// The device adds the capability to its configuration space (add_to), reports configuration
// writes (config_written), forwards accesses to the table and PBA inside its BARs (bar_read,
// bar_write) and raises interrupts with trigger(). A vector whose delivery is masked (by its
// own mask bit, the function mask, or MSI-X being off) records the interrupt in the PBA and
// delivers it when unmasked.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "base/result.h"
#include "devices/interrupt.h"
#include "devices/pci/config_space.h"

namespace ioasis::devices {

// PCI LB 3.0 figure 6-10, MSI-X capability structure.
struct [[gnu::packed]] MsixCapability {
  uint8_t cap_id;
  uint8_t next;
  uint16_t message_control;
  uint32_t table;  // offset | BIR
  uint32_t pba;    // offset | BIR
};
static_assert(sizeof(MsixCapability) == 12);
static_assert(offsetof(MsixCapability, message_control) == 2);
static_assert(offsetof(MsixCapability, pba) == 8);

// PCI LB 3.0 figure 6-11, MSI-X table entry.
struct [[gnu::packed]] MsixTableEntry {
  uint32_t address_lo;
  uint32_t address_hi;
  uint32_t data;
  uint32_t vector_control;  // bit 0: mask
};
static_assert(sizeof(MsixTableEntry) == 16);
static_assert(offsetof(MsixTableEntry, vector_control) == 12);

struct MsixLayout {
  uint8_t table_bar = 0;
  uint32_t table_offset = 0;  // 8-byte aligned
  uint8_t pba_bar = 0;
  uint32_t pba_offset = 0;  // 8-byte aligned
};

class Msix {
 public:
  static constexpr uint16_t kMaxVectors = 2048;
  static constexpr uint16_t kControlFunctionMask = 0x4000;
  static constexpr uint16_t kControlEnable = 0x8000;

  // Creates one route per vector. Vectors start masked with an empty message.
  static Result<std::unique_ptr<Msix>> create(InterruptManager& interrupts, uint16_t vectors,
                                              const MsixLayout& layout);

  uint16_t vectors() const { return static_cast<uint16_t>(table_.size()); }
  const MsixLayout& layout() const { return layout_; }
  uint64_t table_size() const { return table_.size() * sizeof(MsixTableEntry); }
  uint64_t pba_size() const { return pending_.size() * sizeof(uint64_t); }

  // The capability's bytes and per-byte writable mask (function mask and enable only).
  std::vector<uint8_t> capability() const;
  std::vector<uint8_t> capability_writable_mask() const;
  // Appends the capability to `config`; returns its offset.
  Result<uint16_t> add_to(PciConfigSpace& config);
  // Call after each guest write to `config`: picks up changes to message control.
  void config_written(const PciConfigSpace& config, uint16_t offset);
  // For devices that keep message control themselves.
  void set_message_control(uint16_t control);

  // Table and PBA accesses at an offset inside BAR `bar`. Return false when the access is not
  // aimed at the table or the PBA, so the device handles it.
  bool bar_read(uint8_t bar, uint64_t offset, std::span<uint8_t> data);
  bool bar_write(uint8_t bar, uint64_t offset, std::span<const uint8_t> data);

  // Raises vector `vector`, or marks it pending while it is masked.
  void trigger(uint16_t vector);

  bool enabled() const;
  bool pending(uint16_t vector) const;
  // Whether the vector delivers nothing now: its mask bit, the function mask, or MSI-X off.
  bool masked(uint16_t vector) const;
  // Called with a vector's number after its delivery became masked or unmasked, outside this
  // object's lock and possibly from several threads at once, so the observer asks masked() for
  // the current state rather than trusting the order of calls. A device whose peer signals the
  // route's eventfd directly uses it to redirect the peer while the vector is masked.
  void set_mask_observer(std::function<void(uint16_t vector)> observer);
  // The route behind a vector: its eventfd lets a peer raise the interrupt directly.
  const MsiRoute& route(uint16_t vector) const { return *routes_[vector]; }

  // Power-on state: disabled, every vector masked and not pending.
  void reset();

 private:
  struct Pushed {
    MsiMessage message;
    bool masked = true;
  };
  Msix(std::vector<std::unique_ptr<MsiRoute>> routes, const MsixLayout& layout);

  bool vector_masked(uint16_t vector) const;
  // Pushes a vector's message and mask state to its route when they changed, and delivers a
  // pending interrupt once it is unmasked.
  void sync_vector(uint16_t vector);
  void table_access(uint64_t offset, std::span<uint8_t> read, std::span<const uint8_t> write);
  // Tells the observer about the vectors sync_vector found changed; call without the lock.
  void notify_mask_changes();

  MsixLayout layout_;
  std::vector<std::unique_ptr<MsiRoute>> routes_;

  mutable std::mutex mu_;
  std::vector<MsixTableEntry> table_;
  std::vector<uint64_t> pending_;
  std::vector<Pushed> pushed_;
  uint16_t control_ = 0;  // function mask and enable bits only
  uint16_t cap_offset_ = 0;
  std::function<void(uint16_t)> mask_observer_;
  std::vector<uint16_t> mask_changes_;
};

}  // namespace ioasis::devices
