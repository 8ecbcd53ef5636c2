// The guest-physical memory map ioasis presents. One place, so the boot code, ACPI tables, PCI
// host bridge and e820 map cannot disagree.
//
//   0x0000_0000  low RAM (640 KiB), zero page, boot page tables, command line, PVH start info
//   0x000a_0000  legacy hole; ACPI tables (RSDP first) at 0x000e_0000
//   0x0010_0000  RAM: kernel (1 MiB), then the rest of RAM up to 3 GiB
//   0xc000_0000  32-bit PCI MMIO window (512 MiB)
//   0xe000_0000  PCI ECAM (256 buses x 1 MiB)
//   0xfec0_0000  IOAPIC
//   0xfee0_0000  LAPIC / MSI doorbell
//   4 GiB        RAM beyond 3 GiB, then the 64-bit PCI MMIO window
#pragma once

#include <cstdint>

namespace ioasis::layout {

inline constexpr uint64_t kLowRamEnd = 0xa0000;
inline constexpr uint64_t kZeroPage = 0x7000;      // Linux boot_params
inline constexpr uint64_t kPvhStartInfo = 0x6000;  // hvm_start_info + memmap
inline constexpr uint64_t kPageTables =
    0x9000;  // PML4, PDPT, 4 PDs for 64-bit boot (0x9000-0xefff)
inline constexpr uint64_t kCmdline = 0x20000;
inline constexpr uint64_t kCmdlineMax = 0x10000;
inline constexpr uint64_t kGdt = 0x500;
inline constexpr uint64_t kBootStack = 0x8ff0;

inline constexpr uint64_t kAcpiStart = 0xe0000;  // RSDP must be in 0xe0000-0xfffff
inline constexpr uint64_t kAcpiSize = 0x20000;

inline constexpr uint64_t kHighRamStart = 0x100000;     // 1 MiB
inline constexpr uint64_t kRamBelow4gEnd = 0xc0000000;  // 3 GiB
inline constexpr uint64_t k4GiB = 0x100000000;

inline constexpr uint64_t kPciMmio32Start = 0xc0000000;
inline constexpr uint64_t kPciMmio32Size = 0x20000000;
inline constexpr uint64_t kPciEcamStart = 0xe0000000;
inline constexpr uint64_t kPciEcamSize = 0x10000000;      // buses 0-255
inline constexpr uint64_t kPciMmio64Size = 0x4000000000;  // 256 GiB, placed after RAM above 4 GiB

inline constexpr uint64_t kIoapicStart = 0xfec00000;
inline constexpr uint64_t kLapicStart = 0xfee00000;
inline constexpr uint64_t kMsiStart = 0xfee00000;  // the MSI doorbell window
inline constexpr uint64_t kMsiEnd = 0xfeefffff;    // inclusive

// Legacy I/O ports.
inline constexpr uint16_t kPortCom1 = 0x3f8;
inline constexpr uint32_t kIrqCom1 = 4;
inline constexpr uint16_t kPortDebugExit = 0xf4;  // as QEMU's isa-debug-exit,iobase=0xf4
inline constexpr uint16_t kPortI8042 = 0x60;      // 0x60-0x64; command 0xfe on 0x64 resets
inline constexpr uint16_t kPortResetControl = 0xcf9;
inline constexpr uint16_t kPortPciConfig = 0xcf8;     // 0xcf8 address, 0xcfc-0xcff data
inline constexpr uint16_t kPortSleepControl = 0x600;  // FADT hardware-reduced sleep control/status
inline constexpr uint8_t kSleepTypeS5 = 5;            // \_S5 SLP_TYP; written as (5 << 2) | SLP_EN
inline constexpr uint32_t kGsiPowerButton = 10;       // the ACPI GED's interrupt (edge, high)
// PCI INTA-INTD land on IOAPIC pins 16-19, above the ISA interrupts, as on a PC chipset; a slot's
// pins are swizzled over them, so its four pins reach four different GSIs. The DSDT's _PRT says
// the same to the guest.
inline constexpr uint32_t kGsiPciIntxBase = 16;
inline constexpr uint32_t kPciIntxPins = 4;
// `pin` counts from 0 for INTA.
constexpr uint32_t pci_intx_gsi(uint32_t slot, uint32_t pin) {
  return kGsiPciIntxBase + (slot + pin) % kPciIntxPins;
}

}  // namespace ioasis::layout
