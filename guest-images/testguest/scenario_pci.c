// test=pci: enumerate through port 0xcf8/0xcfc and ECAM and check they agree; size BARs; walk
// capabilities; round-trip an MSI-X table entry on every function that has one. Optional
// min_buses=<n> requires functions on at least n buses (bridges followed).
#include "acpi.h"
#include "check.h"
#include "msix.h"
#include "pci.h"
#include "print.h"
#include "scenario.h"

static struct pci_function by_port[kPciMaxFunctions];
static struct pci_function by_ecam[kPciMaxFunctions];

static bool same_function(const struct pci_function* a, const struct pci_function* b) {
  return a->bdf == b->bdf && a->vendor == b->vendor && a->device == b->device &&
         a->class_code == b->class_code && a->revision == b->revision &&
         a->header_type == b->header_type;
}

static void print_bar(int index, const struct pci_bar* bar) {
  const char* kind = bar->io ? "io" : bar->mem64 ? "mem64" : "mem32";
  printf("  bar%d %s%s base 0x%lx size 0x%lx\n", index, kind, bar->prefetchable ? " pref" : "",
         bar->base, bar->size);
}

// Sizes every BAR; true when each implemented BAR has a power-of-two size, is naturally
// aligned, and reads back unchanged after sizing.
static bool probe_bars(pci_bdf_t bdf) {
  bool ok = true;
  int slots = pci_bar_slots(bdf);
  for (int i = 0; i < slots;) {
    uint32_t before = pci_read32(bdf, kPciBar0 + 4 * i);
    struct pci_bar bar;
    int used = pci_bar_probe(bdf, i, &bar);
    if (bar.size) {
      print_bar(i, &bar);
      ok &= (bar.size & (bar.size - 1)) == 0;
      ok &= (bar.base & (bar.size - 1)) == 0;
    }
    ok &= pci_read32(bdf, kPciBar0 + 4 * i) == before;
    i += used;
  }
  return ok;
}

static void print_caps(pci_bdf_t bdf) {
  uint8_t cap = pci_next_cap(bdf, 0);
  for (int i = 0; cap >= 0x40 && i < 48; i++) {
    printf("  cap 0x%02x at 0x%02x\n", pci_read8(bdf, cap), cap);
    cap = pci_next_cap(bdf, cap);
  }
}

// Programs entry 0 masked with a recognisable message, reads it back and restores it.
static void check_msix(const struct pci_function* f) {
  struct pci_msix m;
  if (!pci_msix_probe(f->bdf, &m)) return;
  printf("  msix %u entries, table bar%u+0x%x, pba bar%u+0x%x\n", m.table_size, m.table_bar,
         m.table_offset, m.pba_bar, m.pba_offset);
  char name[64];
  snprintf(name, sizeof(name), "pci %02x:%02x.%x MSI-X table entry round-trip", PCI_BUS(f->bdf),
           PCI_DEV(f->bdf), PCI_FN(f->bdf));
  if (!checkf(m.table_addr != 0, "pci %02x:%02x.%x MSI-X table reachable", PCI_BUS(f->bdf),
              PCI_DEV(f->bdf), PCI_FN(f->bdf))) {
    return;
  }
  uint16_t command = pci_read16(f->bdf, kPciCommand);
  pci_set_command(f->bdf, kPciCommandMemory, 0);
  uint16_t last = (uint16_t)(m.table_size - 1);
  struct msix_entry saved = pci_msix_read_entry(&m, last);
  struct msix_entry want = {msi_address(0), msi_data(0x4e), kMsixEntryMasked};
  pci_msix_write_entry(&m, last, &want);
  struct msix_entry got = pci_msix_read_entry(&m, last);
  pci_msix_write_entry(&m, last, &saved);
  pci_write16(f->bdf, kPciCommand, command);
  check(got.address == want.address && got.data == want.data &&
            (got.vector_control & kMsixEntryMasked),
        name);
}

// Writes the interrupt line register through one mechanism and reads it through the other.
static void check_cross_writes(const struct pci_function* funcs, int n) {
  for (int i = 0; i < n; i++) {
    pci_bdf_t bdf = funcs[i].bdf;
    uint8_t saved = (uint8_t)pci_read(PCI_ACCESS_PORT, bdf, kPciInterruptLine, 1);
    pci_write(PCI_ACCESS_PORT, bdf, kPciInterruptLine, 1, 0x5a);
    uint8_t via_ecam = (uint8_t)pci_read(PCI_ACCESS_ECAM, bdf, kPciInterruptLine, 1);
    if (pci_read(PCI_ACCESS_PORT, bdf, kPciInterruptLine, 1) != 0x5a) continue;  // read-only
    pci_write(PCI_ACCESS_ECAM, bdf, kPciInterruptLine, 1, 0xa5);
    uint8_t via_port = (uint8_t)pci_read(PCI_ACCESS_PORT, bdf, kPciInterruptLine, 1);
    pci_write(PCI_ACCESS_PORT, bdf, kPciInterruptLine, 1, saved);
    checkf(via_ecam == 0x5a, "pci %02x:%02x.%x port write seen through ECAM", PCI_BUS(bdf),
           PCI_DEV(bdf), PCI_FN(bdf));
    checkf(via_port == 0xa5, "pci %02x:%02x.%x ECAM write seen through port", PCI_BUS(bdf),
           PCI_DEV(bdf), PCI_FN(bdf));
    return;
  }
  check(false, "some function has a writable interrupt line register");
}

static bool find_ecam(const struct boot_info* boot) {
  const char* source = "";
  uint64_t rsdp = acpi_find_rsdp(boot, &source);
  if (!checkf(rsdp != 0, "ACPI RSDP found (%s)", source)) return false;
  printf("RSDP at 0x%lx\n", rsdp);
  const struct acpi_header* mcfg = acpi_find_table(rsdp, "MCFG");
  if (!check(mcfg != NULL, "ACPI MCFG found")) return false;
  struct ecam_region ecam;
  if (!check(acpi_mcfg_ecam(mcfg, &ecam), "MCFG describes segment 0")) return false;
  printf("ECAM at 0x%lx, buses %u-%u\n", ecam.base, ecam.start_bus, ecam.end_bus);
  pci_set_ecam(&ecam);
  return check(pci_has_ecam(), "ECAM window mapped");
}

static int count_buses(const struct pci_function* funcs, int n) {
  int buses = 0;
  for (int i = 0; i < n; i++) {
    if (i == 0 || PCI_BUS(funcs[i].bdf) != PCI_BUS(funcs[i - 1].bdf)) buses++;
  }
  return buses;
}

void scenario_pci(const struct boot_info* boot) {
  int n_port = pci_enumerate(PCI_ACCESS_PORT, by_port, kPciMaxFunctions);
  checkf(n_port > 0, "port 0xcf8 enumeration finds functions (%d)", n_port);
  if (!find_ecam(boot)) return;
  int n_ecam = pci_enumerate(PCI_ACCESS_ECAM, by_ecam, kPciMaxFunctions);
  checkf(n_ecam == n_port, "ECAM enumeration finds the same number of functions (%d)", n_ecam);
  bool same = n_ecam == n_port;
  for (int i = 0; same && i < n_ecam; i++) same = same_function(&by_port[i], &by_ecam[i]);
  check(same, "both mechanisms see the same functions, IDs, classes and header types");

  for (int i = 0; i < n_ecam; i++) {
    const struct pci_function* f = &by_ecam[i];
    printf("pci %02x:%02x.%x %04x:%04x %06x %s\n", PCI_BUS(f->bdf), PCI_DEV(f->bdf), PCI_FN(f->bdf),
           f->vendor, f->device, f->class_code, pci_class_name(f->class_code));
    bool bars_ok = probe_bars(f->bdf);
    print_caps(f->bdf);
    checkf(bars_ok, "pci %02x:%02x.%x BARs sized, aligned and restored", PCI_BUS(f->bdf),
           PCI_DEV(f->bdf), PCI_FN(f->bdf));
    check_msix(f);
  }
  check_cross_writes(by_ecam, n_ecam);

  uint64_t min_buses;
  if (cmdline_get_uint(boot->cmdline, "min_buses", &min_buses)) {
    int buses = count_buses(by_ecam, n_ecam);
    checkf((uint64_t)buses >= min_buses, "functions found on %d buses (min_buses=%lu)", buses,
           min_buses);
  }
}
