#include "vmm/acpi/dsdt.h"

#include "vmm/acpi/aml.h"
#include "vmm/acpi/aml_resources.h"
#include "vmm/acpi/sdt.h"

namespace ioasis::acpi {
namespace {

using namespace aml;  // NOLINT: the DSDT reads as ASL

// Revision 2 makes AML integers 64 bits wide (ACPI 6.5 section 5.2.11.1), which the 64-bit MMIO
// window needs.
constexpr uint8_t kDsdtRevision = 2;

// The 0xcf8-0xcff configuration ports belong to the host bridge itself, so the I/O window
// handed to the bus skips them, as a firmware-built _CRS does.
constexpr uint16_t kPciConfigPortFirst = layout::kPortPciConfig;
constexpr uint16_t kPciConfigPortLast = layout::kPortPciConfig + 7;

void add_io_window(std::vector<Resource>& out, const AddressWindow& window) {
  if (window.size == 0) return;
  uint64_t first = window.base;
  uint64_t last = window.base + window.size - 1;
  if (last < kPciConfigPortFirst || first > kPciConfigPortLast) {
    out.push_back(word_io(static_cast<uint16_t>(first), static_cast<uint16_t>(last)));
    return;
  }
  if (first < kPciConfigPortFirst) {
    out.push_back(word_io(static_cast<uint16_t>(first), kPciConfigPortFirst - 1));
  }
  if (last > kPciConfigPortLast) {
    out.push_back(word_io(kPciConfigPortLast + 1, static_cast<uint16_t>(last)));
  }
}

// _PRT (ACPI 6.5 section 6.2.13) without link devices: each entry's Source is 0, so its Source
// Index is the GSI itself, which the OS then programs level triggered and active low. The GSIs are
// the ones the VMM wires passthrough INTx to (layout::pci_intx_gsi).
constexpr uint32_t kPciSlots = 32;
using layout::kPciIntxPins;

Aml pci_routing_table() {
  std::vector<Aml> entries;
  entries.reserve(kPciSlots * kPciIntxPins);
  for (uint32_t slot = 0; slot < kPciSlots; ++slot) {
    for (uint32_t pin = 0; pin < kPciIntxPins; ++pin) {
      // Address: device number in the high word, 0xFFFF for "any function".
      entries.push_back(package({integer((uint64_t{slot} << 16) | 0xffff), integer(pin), integer(0),
                                 integer(layout::pci_intx_gsi(slot, pin))}));
    }
  }
  return name("_PRT", package(entries));
}

Aml pci_host_bridge(const AcpiConfig& c) {
  std::vector<Resource> crs = {word_bus_number(c.pci_bus_start, c.pci_bus_end)};
  add_io_window(crs, c.pci_io);
  if (c.pci_mmio32.size != 0) {
    uint64_t last = c.pci_mmio32.base + c.pci_mmio32.size - 1;
    crs.push_back(dword_memory(static_cast<uint32_t>(c.pci_mmio32.base),
                               static_cast<uint32_t>(last), MemoryCaching::kNonCacheable));
  }
  if (c.pci_mmio64.size != 0) {
    uint64_t last = c.pci_mmio64.base + c.pci_mmio64.size - 1;
    crs.push_back(qword_memory(c.pci_mmio64.base, last, MemoryCaching::kCacheable));
  }
  return device("PCI0", {
                            name("_HID", eisa_id("PNP0A08")),
                            name("_CID", eisa_id("PNP0A03")),
                            name("_SEG", integer(0)),
                            name("_BBN", integer(c.pci_bus_start)),
                            name("_UID", integer(0)),
                            name("_CRS", resource_template(crs)),
                            pci_routing_table(),
                        });
}

// Linux uses the MCFG window only once it finds it reserved, either by a motherboard resource
// device (PNP0C02) in ACPI or in the e820 map; claiming it here keeps that independent of e820.
Aml ecam_reservation(const AcpiConfig& c) {
  uint64_t first = c.ecam_base + (uint64_t{c.pci_bus_start} << 20);
  uint64_t size = (uint64_t{c.pci_bus_end} - c.pci_bus_start + 1) << 20;
  Resource window = first + size - 1 <= 0xffffffff
                        ? memory32_fixed(static_cast<uint32_t>(first), static_cast<uint32_t>(size))
                        : qword_memory(first, first + size - 1, MemoryCaching::kNonCacheable);
  return device("MBRD", {
                            name("_HID", eisa_id("PNP0C02")),
                            name("_UID", integer(0)),
                            name("_CRS", resource_template({window})),
                        });
}

Aml com1(const AcpiConfig& c) {
  return device("COM1", {
                            name("_HID", eisa_id("PNP0501")),
                            name("_UID", integer(0)),
                            name("_CRS", resource_template({io(c.com1_port, c.com1_port, 0, 8),
                                                            irq_no_flags(c.com1_irq)})),
                        });
}

// The power button and the Generic Event Device that reports it: on the GED's interrupt the OS
// runs _EVT, which notifies the button with 0x80 ("pressed"), and an OS honouring it powers off.
std::vector<Aml> power_button(uint32_t gsi) {
  return {
      device("PWRB", {name("_HID", eisa_id("PNP0C0C")), name("_UID", integer(0))}),
      device("GED0",
             {
                 name("_HID", string("ACPI0013")),
                 name("_UID", integer(0)),
                 name("_CRS", resource_template({edge_interrupt(gsi)})),
                 method("_EVT", 1, true, {notify("\\_SB.PWRB", 0x80)}),
             }),
  };
}

}  // namespace

Result<std::vector<uint8_t>> build_dsdt(const AcpiConfig& config) {
  std::vector<Aml> sb = {pci_host_bridge(config), ecam_reservation(config), com1(config)};
  if (config.power_button_gsi) {
    for (Aml& a : power_button(*config.power_button_gsi)) sb.push_back(std::move(a));
  }
  Aml body = term_list({
      scope("\\_SB", sb),
      // \_S5: SLP_TYPa, SLP_TYPb. A hardware-reduced guest writes SLP_TYPa to the sleep control
      // register.
      name("_S5", package({integer(layout::kSleepTypeS5), integer(0)})),
  });
  if (!body.valid()) return Error(Errc::kInvalidArgument, "DSDT: configuration gives invalid AML");
  std::vector<uint8_t> table;
  append_struct(table, make_header("DSDT", kDsdtRevision));
  table.insert(table.end(), body.bytes().begin(), body.bytes().end());
  seal_table(table);
  return table;
}

}  // namespace ioasis::acpi
