// MSI-X: capability parsing and table programming (PCI Local Bus 3.0 section 6.8.2), and the
// x86 MSI message format (Intel SDM vol. 3, 11.11).
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "pci.h"

enum {
  kPciCapMsi = 0x05,
  kPciCapMsix = 0x11,
  kMsixControl = 2,  // offset in the capability
  kMsixTable = 4,
  kMsixPba = 8,
  kMsixControlEnable = 0x8000,
  kMsixControlFunctionMask = 0x4000,
  kMsixEntrySize = 16,
  kMsixEntryMasked = 0x1,  // vector control bit 0
};

struct pci_msix {
  uint8_t cap;          // capability offset
  uint16_t table_size;  // entries
  uint8_t table_bar;
  uint32_t table_offset;
  uint8_t pba_bar;
  uint32_t pba_offset;
  uint64_t table_addr;  // 0 when the BAR is unassigned or unmapped
  uint64_t pba_addr;
};

struct msix_entry {
  uint64_t address;
  uint32_t data;
  uint32_t vector_control;
};

// Reads the capability and resolves the table and PBA addresses through their BARs.
bool pci_msix_probe(pci_bdf_t bdf, struct pci_msix* out);
void pci_msix_write_entry(const struct pci_msix* m, uint16_t index, const struct msix_entry* e);
struct msix_entry pci_msix_read_entry(const struct pci_msix* m, uint16_t index);
void pci_msix_mask_entry(const struct pci_msix* m, uint16_t index, bool masked);
bool pci_msix_pending(const struct pci_msix* m, uint16_t index);
// Sets the MSI-X enable and function mask bits of the message control register.
void pci_msix_set_control(pci_bdf_t bdf, const struct pci_msix* m, bool enable, bool mask_all);

// Fixed delivery, edge triggered, physical destination.
static inline uint64_t msi_address(uint8_t apic_id) {
  return 0xfee00000ull | ((uint64_t)apic_id << 12);
}
static inline uint32_t msi_data(uint8_t vector) { return vector; }
