// The register state a vCPU starts in: 64-bit long mode (Linux boot protocol's 64-bit entry) or
// 32-bit flat protected mode (the PVH entry), plus the boot GDT, page tables and MSRs.
#pragma once

#include <linux/kvm.h>

#include <vector>

#include "base/result.h"
#include "vmm/memory/guest_memory.h"

namespace ioasis::x86 {

// Selectors of the boot GDT. Linux's boot protocol wants __BOOT_CS 0x10 and __BOOT_DS 0x18.
inline constexpr uint16_t kSelCode32 = 0x08;
inline constexpr uint16_t kSelCode64 = 0x10;
inline constexpr uint16_t kSelData = 0x18;
inline constexpr uint16_t kSelTss = 0x20;

// Writes the boot GDT and identity page tables (2 MiB pages over the first 4 GiB).
Result<void> write_boot_tables(const GuestMemory& mem);

enum class EntryMode { kLong64, kProtected32 };

// Segment, control and descriptor-table registers for the entry mode; other fields of `base`
// (APIC base, interrupt bitmap) are kept.
kvm_sregs entry_sregs(kvm_sregs base, EntryMode mode);

// MSRs a freshly reset CPU has that KVM does not set for us (fast strings, write-back MTRR
// default).
std::vector<kvm_msr_entry> boot_msrs();

// x87 control word and MXCSR as after FNINIT / reset.
kvm_fpu boot_fpu();

}  // namespace ioasis::x86
