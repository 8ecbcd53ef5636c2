// Just enough ACPI to find the PCI ECAM window: RSDP, RSDT/XSDT and MCFG. Every table is
// checksummed and bounds-checked before use.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "boot.h"

// ACPI 6.5 section 5.2.5.3, Root System Description Pointer (revision 2 layout).
struct acpi_rsdp {
  char signature[8];  // "RSD PTR "
  uint8_t checksum;   // covers the first 20 bytes
  char oem_id[6];
  uint8_t revision;
  uint32_t rsdt_address;
  uint32_t length;
  uint64_t xsdt_address;
  uint8_t extended_checksum;  // covers all 36 bytes
  uint8_t reserved[3];
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_rsdp) == 36, "RSDP is 36 bytes");
_Static_assert(offsetof(struct acpi_rsdp, xsdt_address) == 24, "XsdtAddress at 24");

// ACPI 6.5 section 5.2.6, System Description Table Header.
struct acpi_header {
  char signature[4];
  uint32_t length;
  uint8_t revision;
  uint8_t checksum;
  char oem_id[6];
  char oem_table_id[8];
  uint32_t oem_revision;
  uint32_t creator_id;
  uint32_t creator_revision;
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_header) == 36, "table header is 36 bytes");

// PCI Firmware Specification 3.3 section 4.1.2, MCFG configuration space base address
// allocation structure; the entries follow the header and 8 reserved bytes.
struct acpi_mcfg_allocation {
  uint64_t base_address;
  uint16_t segment;
  uint8_t start_bus;
  uint8_t end_bus;
  uint32_t reserved;
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_mcfg_allocation) == 16, "MCFG allocation is 16 bytes");
#define ACPI_MCFG_ALLOCATIONS_OFFSET 44

struct ecam_region {
  uint64_t base;  // address of bus 0 (even if start_bus > 0)
  uint8_t start_bus;
  uint8_t end_bus;
};

// Uses the start_info RSDP when present, else scans 0xe0000-0xfffff on 16-byte boundaries.
// Returns the RSDP's address or 0; *source says which way it was found.
uint64_t acpi_find_rsdp(const struct boot_info* boot, const char** source);

// Finds a checksummed table by signature through the XSDT (revision >= 2) or the RSDT.
const struct acpi_header* acpi_find_table(uint64_t rsdp_paddr, const char* signature);

// The segment 0 ECAM window described by MCFG.
bool acpi_mcfg_ecam(const struct acpi_header* mcfg, struct ecam_region* out);
