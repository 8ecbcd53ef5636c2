// PCI configuration access through both mechanisms (port 0xcf8/0xcfc and ECAM), enumeration,
// BAR sizing, capability walks and MSI-X table programming. Single CPU, no locking.
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "acpi.h"

typedef uint16_t pci_bdf_t;
#define PCI_BDF(bus, dev, fn) ((pci_bdf_t)(((bus) << 8) | ((dev) << 3) | (fn)))
#define PCI_BUS(bdf) ((uint8_t)((bdf) >> 8))
#define PCI_DEV(bdf) ((uint8_t)(((bdf) >> 3) & 0x1f))
#define PCI_FN(bdf) ((uint8_t)((bdf)&0x7))

// Configuration header offsets and bits (PCI Local Bus 3.0 section 6.2; PCIe 6.0 section 7.5).
enum {
  kPciVendorId = 0x00,
  kPciDeviceId = 0x02,
  kPciCommand = 0x04,
  kPciStatus = 0x06,
  kPciRevision = 0x08,
  kPciHeaderType = 0x0e,
  kPciBar0 = 0x10,
  kPciSecondaryBus = 0x19,  // type 1 header
  kPciCapPointer = 0x34,
  kPciInterruptLine = 0x3c,
  kPciInterruptPin = 0x3d,  // 0: none, 1-4: INTA-INTD
  kPciCommandIo = 0x1,
  kPciCommandMemory = 0x2,
  kPciCommandBusMaster = 0x4,
  kPciCommandIntxDisable = 0x400,
  kPciStatusCapList = 0x10,
  kPciHeaderMultiFunction = 0x80,
  kPciConfigSize = 256,
  kPcieConfigSize = 4096,
};

enum pci_access {
  PCI_ACCESS_PORT,  // 0xcf8/0xcfc: the first 256 bytes only
  PCI_ACCESS_ECAM,
};

// Enables ECAM for buses [start_bus, end_bus]; afterwards the default accessors use it.
void pci_set_ecam(const struct ecam_region* ecam);
bool pci_has_ecam(void);

// width is 1, 2 or 4 and off must be aligned to it. Reads of absent functions, of offsets past
// what the mechanism reaches, or of buses outside ECAM, return all ones.
uint32_t pci_read(enum pci_access how, pci_bdf_t bdf, uint16_t off, int width);
void pci_write(enum pci_access how, pci_bdf_t bdf, uint16_t off, int width, uint32_t value);

// The default mechanism: ECAM when known, else ports.
uint8_t pci_read8(pci_bdf_t bdf, uint16_t off);
uint16_t pci_read16(pci_bdf_t bdf, uint16_t off);
uint32_t pci_read32(pci_bdf_t bdf, uint16_t off);
void pci_write8(pci_bdf_t bdf, uint16_t off, uint8_t value);
void pci_write16(pci_bdf_t bdf, uint16_t off, uint16_t value);
void pci_write32(pci_bdf_t bdf, uint16_t off, uint32_t value);

struct pci_function {
  pci_bdf_t bdf;
  uint16_t vendor;
  uint16_t device;
  uint32_t class_code;  // base class << 16 | subclass << 8 | programming interface
  uint8_t revision;
  uint8_t header_type;  // without the multi-function bit
};

enum { kPciMaxFunctions = 64, kPciMaxBuses = 32 };

// Scans bus 0 and every bus behind a bridge with a secondary bus number already assigned,
// visiting at most kPciMaxBuses buses. Returns the number of functions stored (at most max).
int pci_enumerate(enum pci_access how, struct pci_function* out, int max);

// Finds vendor:device; instance 0 is the first in enumeration order.
bool pci_find_device(uint16_t vendor, uint16_t device, int instance, struct pci_function* out);

struct pci_bar {
  uint64_t base;  // as programmed; 0 when unassigned
  uint64_t size;  // 0 when the BAR is not implemented
  bool io;
  bool mem64;
  bool prefetchable;
};

// BAR slots of the function's header type: 6 (type 0), 2 (type 1) or 0.
int pci_bar_slots(pci_bdf_t bdf);
// Sizes BAR index by writing all ones and restoring it, with decoding disabled meanwhile.
// Returns the slots it occupies (2 for a 64-bit memory BAR, else 1).
int pci_bar_probe(pci_bdf_t bdf, int index, struct pci_bar* bar);

// Capability list walk (bounded against loops). Returns the offset of the first capability
// with this id after offset `after` (0: from the list head), or 0.
uint8_t pci_find_cap(pci_bdf_t bdf, uint8_t id, uint8_t after);
// Next capability in the list after the one at offset cap (0: the head), or 0.
uint8_t pci_next_cap(pci_bdf_t bdf, uint8_t cap);

void pci_set_command(pci_bdf_t bdf, uint16_t set, uint16_t clear);

const char* pci_class_name(uint32_t class_code);
