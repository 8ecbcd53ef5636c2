// Scenarios: each one is a function that runs checks; main() picks one by the command line's
// test=<name> and calls finish() afterwards. Adding a scenario is a new file and one line in
// the table in main.c.
#pragma once

#include "boot.h"

struct scenario {
  const char* name;
  const char* summary;
  void (*run)(const struct boot_info* boot);
};

void scenario_boot(const struct boot_info* boot);
void scenario_pci(const struct boot_info* boot);
void scenario_irq(const struct boot_info* boot);
void scenario_heartbeat(const struct boot_info* boot);
void scenario_power_button(const struct boot_info* boot);
void scenario_virtio_blk(const struct boot_info* boot);
void scenario_viommu(const struct boot_info* boot);
void scenario_viommu_dma(const struct boot_info* boot);
void scenario_viommu_bench(const struct boot_info* boot);
void scenario_dma_shared(const struct boot_info* boot);
void scenario_dma_isolated(const struct boot_info* boot);
void scenario_msix(const struct boot_info* boot);
void scenario_msi(const struct boot_info* boot);
void scenario_intx(const struct boot_info* boot);
void scenario_bar_mmap(const struct boot_info* boot);

// Reads an optional unsigned decimal key=value from the command line.
bool cmdline_get_uint(const char* cmdline, const char* key, uint64_t* value);
