// ACPI tables for an ioasis guest: RSDP, XSDT, FADT (hardware-reduced), DSDT, MADT, MCFG and,
// when the machine has a virtio-iommu, VIOT. Built from a plain description of the machine into
// one blob whose pointers are absolute guest-physical addresses, ready to be copied to `base`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/address.h"
#include "base/result.h"
#include "vmm/layout.h"

namespace ioasis::acpi {

struct AddressWindow {
  uint64_t base = 0;
  uint64_t size = 0;  // 0: no window
};

// A PCI function: segment and bus/device/function packed as bus << 8 | device << 3 | function.
struct PciAddress {
  uint16_t segment = 0;
  uint16_t bdf = 0;
};

// Endpoints [bdf_start, bdf_end] of one segment behind the virtio-iommu. Their endpoint IDs are
// their BDFs, the numbering the virtio-iommu device uses on its request queue.
struct ViotEndpointRange {
  uint16_t segment = 0;
  uint16_t bdf_start = 0;
  uint16_t bdf_end = 0;
};

struct ViotConfig {
  PciAddress iommu;
  std::vector<ViotEndpointRange> endpoints;
};

struct AcpiConfig {
  uint32_t num_cpus = 1;  // APIC IDs 0..num_cpus-1; at most 255 (xAPIC IDs, 0xff is broadcast)

  // PCI host bridge \_SB.PCI0, segment 0.
  uint64_t ecam_base = layout::kPciEcamStart;
  uint8_t pci_bus_start = 0;
  uint8_t pci_bus_end = 255;
  AddressWindow pci_mmio32{layout::kPciMmio32Start, layout::kPciMmio32Size};
  AddressWindow pci_mmio64;  // placed by the caller after RAM above 4 GiB
  // The whole port space by default; the 0xcf8-0xcff config ports are carved out of it.
  AddressWindow pci_io{0, 0x10000};

  uint64_t ioapic_address = layout::kIoapicStart;
  uint8_t ioapic_id = 0;
  uint32_t ioapic_gsi_base = 0;

  uint16_t com1_port = layout::kPortCom1;
  uint8_t com1_irq = static_cast<uint8_t>(layout::kIrqCom1);

  uint16_t sleep_control_port = layout::kPortSleepControl;
  uint16_t reset_port = layout::kPortResetControl;

  std::optional<ViotConfig> viot;

  // An ACPI power button (PNP0C0C) signalled through a Generic Event Device (ACPI0013) on this
  // GSI, edge triggered: how the VMM asks a hardware-reduced guest to power off.
  std::optional<uint32_t> power_button_gsi;
};

// Where one table landed, for callers that want to log or inspect the layout.
struct TableLocation {
  std::string signature;  // "RSD PTR " for the RSDP
  Gpa gpa;
  uint32_t length = 0;
};

struct AcpiTables {
  Gpa base;  // GPA of bytes[0]
  Gpa rsdp;
  std::vector<uint8_t> bytes;
  std::vector<TableLocation> tables;
};

// Validates `config` and builds the tables to live at `base`, which must be 16-byte aligned; the
// blob must fit in `max_size` bytes. The RSDP comes first, so the default base is where the guest's
// BIOS-area scan finds it.
Result<AcpiTables> build_acpi_tables(const AcpiConfig& config, Gpa base = Gpa(layout::kAcpiStart),
                                     uint64_t max_size = layout::kAcpiSize);

}  // namespace ioasis::acpi
