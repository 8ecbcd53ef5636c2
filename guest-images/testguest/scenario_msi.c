// test=msi: MSI (not MSI-X) completion interrupts of a DMA engine served with
// vfio-user-dma-server --msi, without the vIOMMU. The function has an MSI capability (64-bit
// address, one vector) and no MSI-X. Programmed with this CPU's LAPIC address and a vector and
// enabled, each completion (failed ones too) delivers one interrupt to the IDT handler; the
// registers read back as written; MSI disabled delivers nothing, and enabled again the next copy
// interrupts again.
#include "arch.h"
#include "check.h"
#include "deadline.h"
#include "dma_viommu.h"
#include "idt.h"
#include "lapic.h"
#include "msix.h"
#include "print.h"
#include "scenario.h"
#include "strutil.h"

#define kOutsideRam (1ull << 40)

enum {
  kVectorMsi = 0x54,
  kQuietMs = 50,
  kIrqWaitMs = 1000,
  kCanary = 0x77,
  kSeed = 0x21,
  // PCI LB 3.0 6.8.1, 64-bit layout.
  kMsiControl = 2,
  kMsiAddressLo = 4,
  kMsiAddressHi = 8,
  kMsiData = 12,
  kMsiEnable = 0x1,
  kMsi64Bit = 0x80,
};

static uint8_t bufs[2][kDmaPage] __attribute__((aligned(kDmaPage)));
static struct dma_engine engine;
static uint8_t cap;
static volatile int msi_interrupts;

static INTERRUPT_HANDLER(msi_handler) {
  msi_interrupts++;
  lapic_eoi();
}

static uint64_t gpa(const void* p) { return (uint64_t)(uintptr_t)p; }

static int take_interrupts(uint32_t ms) {
  return lapic_take_vector(kVectorMsi, &msi_interrupts, ms);
}

static bool quiet(void) { return take_interrupts(kQuietMs) == 0; }

static bool copy_ok(uint8_t seed) {
  dma_fill_pattern(bufs[0], kDmaPage, seed);
  memset(bufs[1], kCanary, kDmaPage);
  struct dma_result r = dma_engine_copy(&engine, gpa(bufs[0]), gpa(bufs[1]), kDmaPage);
  return dma_ok(r) && dma_pattern_mismatch(bufs[1], kDmaPage, seed) == kDmaPage;
}

static void set_enabled(bool on) {
  pci_bdf_t bdf = engine.fn.bdf;
  uint16_t control = pci_read16(bdf, cap + kMsiControl);
  control = on ? (control | kMsiEnable) : (control & ~kMsiEnable);
  pci_write16(bdf, cap + kMsiControl, control);
}

static bool program(void) {
  pci_bdf_t bdf = engine.fn.bdf;
  check(pci_find_cap(bdf, kPciCapMsix, 0) == 0, "no MSI-X capability");
  cap = pci_find_cap(bdf, kPciCapMsi, 0);
  if (!check(cap != 0, "MSI capability found")) return false;
  uint16_t control = pci_read16(bdf, cap + kMsiControl);
  if (!checkf(control & kMsi64Bit, "64-bit address capable (control 0x%x)", control)) return false;
  check(!(control & kMsiEnable), "MSI starts disabled");
  uint32_t address = (uint32_t)msi_address(lapic_id());
  pci_write32(bdf, cap + kMsiAddressLo, address);
  pci_write32(bdf, cap + kMsiAddressHi, 0);
  pci_write16(bdf, cap + kMsiData, (uint16_t)msi_data(kVectorMsi));
  set_enabled(true);
  checkf(pci_read32(bdf, cap + kMsiAddressLo) == address &&
             pci_read16(bdf, cap + kMsiData) == (uint16_t)msi_data(kVectorMsi) &&
             (pci_read16(bdf, cap + kMsiControl) & kMsiEnable),
         "address 0x%x, data 0x%x and enable read back", address, msi_data(kVectorMsi));
  return true;
}

void scenario_msi(const struct boot_info* boot) {
  (void)boot;
  irq_disable();
  legacy_pic_mask_all();
  idt_set_handler(kVectorMsi, msi_handler);
  if (!dma_engines_init(&engine, 1) || !program()) return;
  check(quiet(), "enabling MSI raised nothing by itself");
  for (int i = 0; i < 3; i++) {
    bool copied = copy_ok((uint8_t)(kSeed + i));
    int n = take_interrupts(kIrqWaitMs);
    checkf(copied && n == 1, "copy %d: data copied, one MSI (%d)", i, n);
  }
  struct dma_result r = dma_engine_copy(&engine, gpa(bufs[0]), kOutsideRam, kDmaPage);
  int n = take_interrupts(kIrqWaitMs);
  checkf(dma_failed_with(r, kDmaErrDstUnmapped) && n == 1,
         "a failed copy (%s) also raises one MSI (%d)", dma_error_name(r.error), n);
  set_enabled(false);
  checkf(copy_ok(kSeed) && quiet(), "MSI disabled: a copy delivers nothing");
  set_enabled(true);
  take_interrupts(kQuietMs);  // whatever the disabled window left behind is not counted
  bool copied = copy_ok(kSeed + 1);
  n = take_interrupts(kIrqWaitMs);
  checkf(copied && n == 1, "MSI enabled again: the next copy interrupts (%d)", n);
  checkf(idt_unexpected_interrupts() == 0, "no unexpected interrupts (%d)",
         idt_unexpected_interrupts());
}
