#include "boot.h"
#include "check.h"
#include "idt.h"
#include "print.h"
#include "scenario.h"
#include "strutil.h"
#include "uart.h"

static const struct scenario kScenarios[] = {
    {"boot", "start_info, memory map, command line, UART", scenario_boot},
    {"pci", "PCI enumeration through 0xcf8 and ECAM, BARs, capabilities, MSI-X tables",
     scenario_pci},
    {"irq", "IDT, LAPIC self-IPI and one-shot timer, EOI", scenario_irq},
    {"heartbeat", "stays up, printing a tick per LAPIC timer period", scenario_heartbeat},
    {"power-button", "powers off when the ACPI power button is pressed", scenario_power_button},
    {"virtio-blk", "virtio-pci transport, virtio-blk I/O, GET_ID, read-only disk, MSI-X",
     scenario_virtio_blk},
    {"viommu", "virtio-iommu config, VIOT and request conformance", scenario_viommu},
    {"viommu-dma", "virtio-blk DMA through the virtio-iommu: domains, bypass, faults",
     scenario_viommu_dma},
    {"viommu-bench", "MAP+UNMAP round trips per second through the virtio-iommu",
     scenario_viommu_bench},
    {"dma-shared", "two vfio-user DMA engines in one address space (mode=viommu|guest-ram)",
     scenario_dma_shared},
    {"dma-isolated", "two vfio-user DMA engines in separate domains: isolation, UNMAP, DETACH",
     scenario_dma_isolated},
    {"msix", "DMA engine MSI-X completion interrupts: delivery, masking, PBA", scenario_msix},
    {"msi", "DMA engine MSI completion interrupts: delivery, disable and enable", scenario_msi},
    {"intx", "DMA engine INTx through the IOAPIC: _PRT GSI, level, EOI resample", scenario_intx},
    {"bar-mmap", "DMA engine BAR2 memory reached directly, without traps", scenario_bar_mmap},
};

enum { kScenarioNameMax = 32 };

bool cmdline_get_uint(const char* cmdline, const char* key, uint64_t* value) {
  char text[24];
  if (!cmdline_get(cmdline, key, text, sizeof(text)) || text[0] == '\0') return false;
  uint64_t v = 0;
  for (const char* p = text; *p; p++) {
    if (*p < '0' || *p > '9') return false;
    v = v * 10 + (uint64_t)(*p - '0');
  }
  *value = v;
  return true;
}

static void list_scenarios(void) {
  printf("scenarios:\n");
  for (size_t i = 0; i < sizeof(kScenarios) / sizeof(kScenarios[0]); i++) {
    printf("  %s: %s\n", kScenarios[i].name, kScenarios[i].summary);
  }
}

static const struct scenario* find_scenario(const char* name) {
  for (size_t i = 0; i < sizeof(kScenarios) / sizeof(kScenarios[0]); i++) {
    if (strcmp(kScenarios[i].name, name) == 0) return &kScenarios[i];
  }
  return NULL;
}

void guest_main(void) {
  uart_init();
  // From here on a CPU exception is reported on the console instead of a silent triple fault.
  idt_init();
  printf("testguest: start_info at 0x%lx\n", boot_start_info_paddr);
  struct boot_info boot;
  const char* error = "";
  if (!check(boot_info_parse(boot_start_info_paddr, &boot, &error), "start_info valid")) {
    printf("start_info: %s\n", error);
    finish();
  }
  printf("testguest: cmdline \"%s\"\n", boot.cmdline);
  char name[kScenarioNameMax];
  if (!cmdline_get(boot.cmdline, "test", name, sizeof(name))) {
    check(false, "command line names a scenario (test=<name>)");
    list_scenarios();
    finish();
  }
  const struct scenario* s = find_scenario(name);
  if (!s) {
    checkf(false, "scenario \"%s\" exists", name);
    list_scenarios();
    finish();
  }
  printf("testguest: scenario %s\n", s->name);
  s->run(&boot);
  finish();
}
