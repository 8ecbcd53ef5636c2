// RAII wrappers for the KVM system, VM and vCPU file descriptors. This folder is the only place
// that includes <linux/kvm.h>; the rest of the VMM speaks through these classes.
#pragma once

#include <linux/kvm.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "base/address.h"
#include "base/fd.h"
#include "base/result.h"

namespace ioasis::kvm {

class Vm;
class Vcpu;

// /dev/kvm: capability queries and VM creation.
class System {
 public:
  static Result<System> open(const char* path = "/dev/kvm");

  Result<int> check_extension(long cap) const;
  // The CPUID leaves this host's KVM can virtualize, before any policy filtering.
  Result<std::vector<kvm_cpuid_entry2>> supported_cpuid() const;
  // The MSR indices KVM_GET/SET_MSRS accept.
  Result<std::vector<uint32_t>> msr_index_list() const;
  Result<Vm> create_vm() const;

 private:
  System(UniqueFd fd, size_t run_size) : fd_(std::move(fd)), run_size_(run_size) {}
  UniqueFd fd_;
  size_t run_size_ = 0;
};

struct MemorySlot {
  uint32_t slot;
  Gpa gpa;
  uint64_t size;
  Hva hva;
  bool readonly = false;
};

class Vm {
 public:
  Result<void> set_memory_slot(const MemorySlot& s);
  Result<void> remove_memory_slot(uint32_t slot);
  // PIC + IOAPIC + per-vCPU LAPIC in the kernel, and the PIT for timer calibration.
  Result<void> create_irqchip();
  Result<void> create_pit();
  Result<void> set_tss_address(uint64_t addr);
  Result<void> set_identity_map_address(uint64_t addr);
  Result<void> irq_line(uint32_t gsi, bool level);
  Result<void> signal_msi(uint64_t address, uint32_t data);
  Result<void> set_gsi_routing(std::span<const kvm_irq_routing_entry> entries);
  Result<void> irqfd(int eventfd, uint32_t gsi, bool assign);
  // A level irqfd: `eventfd` asserts `gsi`, an EOI de-asserts it and signals `resamplefd`.
  Result<void> irqfd_resample(int eventfd, int resamplefd, uint32_t gsi);
  // An ioeventfd on a PIO port or MMIO address; `datamatch` narrows it to one written value.
  Result<void> ioeventfd(int eventfd, uint64_t addr, uint32_t len, bool pio,
                         std::optional<uint64_t> datamatch, bool assign);
  Result<Vcpu> create_vcpu(uint32_t id) const;
  int fd() const { return fd_.get(); }

 private:
  friend class System;
  Vm(UniqueFd fd, size_t run_size) : fd_(std::move(fd)), run_size_(run_size) {}
  UniqueFd fd_;
  size_t run_size_;
};

class Vcpu {
 public:
  // KVM_RUN. Returns kIo with EINTR when a signal kicked the thread out.
  Result<void> run();
  kvm_run* run_data() const { return reinterpret_cast<kvm_run*>(run_.data()); }
  // Makes the next (or current) KVM_RUN return at once with EINTR; paired with a signal.
  void set_immediate_exit(bool v) { run_data()->immediate_exit = v ? 1 : 0; }

  Result<kvm_regs> get_regs() const;
  Result<void> set_regs(const kvm_regs& regs);
  Result<kvm_sregs> get_sregs() const;
  Result<void> set_sregs(const kvm_sregs& sregs);
  Result<void> set_fpu(const kvm_fpu& fpu);
  Result<void> set_cpuid(std::span<const kvm_cpuid_entry2> entries);
  Result<void> set_msrs(std::span<const kvm_msr_entry> entries);
  Result<uint64_t> get_msr(uint32_t index) const;
  Result<kvm_lapic_state> get_lapic() const;
  Result<void> set_lapic(const kvm_lapic_state& lapic);
  Result<kvm_mp_state> get_mp_state() const;
  uint32_t id() const { return id_; }

 private:
  friend class Vm;
  Vcpu(UniqueFd fd, MappedRegion run, uint32_t id)
      : fd_(std::move(fd)), run_(std::move(run)), id_(id) {}
  UniqueFd fd_;
  MappedRegion run_;
  uint32_t id_;
};

}  // namespace ioasis::kvm

// The structs we pass by pointer must have the kernel's C layout (see the flexible-array note in
// kvm.cc for the ones that do not).
static_assert(offsetof(kvm_run, exit_reason) == 8);
static_assert(offsetof(kvm_run, io) == 32);
static_assert(sizeof(kvm_regs) == 144);
static_assert(sizeof(kvm_sregs) == 312);
static_assert(sizeof(kvm_cpuid_entry2) == 40);
static_assert(sizeof(kvm_msr_entry) == 16);
static_assert(sizeof(kvm_irq_routing_entry) == 48);
