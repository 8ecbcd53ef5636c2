// test=bar-mmap: BAR2 of a DMA engine (vfio-user function) is plain memory the device lets the
// VMM mmap. The guest fills it with a pattern and reads it back; the engine's BAR2_SUM register
// (read through the trapped BAR0) must follow the guest's stores, which proves they reached the
// device's memory. With direct=1 the VMM is expected to have put BAR2 into the guest map: the
// engine's BAR2_TRAPPED count must stay 0, also after memory decoding is turned off and on again
// (the VMM takes the slot out and puts it back). Without direct=1 the count is printed only.
#include "arch.h"
#include "check.h"
#include "dma_engine.h"
#include "paging.h"
#include "print.h"
#include "scenario.h"

enum {
  kBar2MinSize = 0x1000,
  kRegBar2Trapped = 0x28,
  kRegBar2Sum = 0x2c,
};

static uint32_t word_at(uint32_t i, uint32_t seed) { return (i + 1) * 2654435761u ^ seed; }

// Fills the BAR with a pattern and returns the sum of its words.
static uint32_t fill(uint64_t base, uint64_t size, uint32_t seed) {
  uint32_t sum = 0;
  for (uint32_t i = 0; i < size / 4; ++i) {
    mmio_write32(base + i * 4, word_at(i, seed));
    sum += word_at(i, seed);
  }
  return sum;
}

// Index of the first word that does not hold the pattern, or size / 4.
static uint32_t mismatch(uint64_t base, uint64_t size, uint32_t seed) {
  uint32_t i = 0;
  while (i < size / 4 && mmio_read32(base + i * 4) == word_at(i, seed)) ++i;
  return i;
}

static void check_round(const struct dma_engine* e, uint64_t base, uint64_t size, uint32_t seed,
                        bool direct, const char* when) {
  uint32_t sum = fill(base, size, seed);
  uint32_t bad = mismatch(base, size, seed);
  checkf(bad == size / 4, "%s: BAR2 reads back the pattern (first bad word %u)", when, bad);
  uint32_t device_sum = mmio_read32(e->bar0 + kRegBar2Sum);
  checkf(device_sum == sum, "%s: the device's BAR2 sum 0x%x matches the guest's 0x%x", when,
         device_sum, sum);
  uint32_t trapped = mmio_read32(e->bar0 + kRegBar2Trapped);
  if (direct) {
    checkf(trapped == 0, "%s: no BAR2 access was trapped (%u were)", when, trapped);
  } else {
    note("%s: %u BAR2 accesses were trapped", when, trapped);
  }
}

void scenario_bar_mmap(const struct boot_info* boot) {
  uint64_t direct = 0;
  cmdline_get_uint(boot->cmdline, "direct", &direct);
  struct dma_engine e;
  const char* error = "";
  if (!checkf(dma_engine_open(0, &e, &error), "DMA engine 0 opens (%s)", error)) return;
  struct pci_bar bar;
  pci_bar_probe(e.fn.bdf, 2, &bar);
  if (!checkf(!bar.io && bar.size >= kBar2MinSize && bar.base != 0,
              "BAR2 is an assigned memory BAR of at least 4 KiB (base 0x%lx size 0x%lx)",
              (unsigned long)bar.base, (unsigned long)bar.size)) {
    return;
  }
  if (!check(paging_is_mapped(bar.base, bar.size) || paging_identity_map(bar.base, bar.size),
             "BAR2 is mapped in the guest page tables")) {
    return;
  }
  check_round(&e, bar.base, kBar2MinSize, 0x1234, direct != 0, "first fill");
  // Decoding off and on again: the VMM takes BAR2 out of the guest map and puts it back.
  pci_set_command(e.fn.bdf, 0, kPciCommandMemory);
  pci_set_command(e.fn.bdf, kPciCommandMemory, 0);
  check_round(&e, bar.base, kBar2MinSize, 0xabcd, direct != 0, "after decode off and on");
}
