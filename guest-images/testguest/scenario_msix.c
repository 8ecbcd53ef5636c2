// test=msix: MSI-X completion interrupts of a DMA engine (vfio-user function) without the vIOMMU.
// The capability points at the table and PBA in BAR0; entry 0 programmed to a vector on this CPU
// delivers one interrupt per finished copy, failed copies included, to an IDT handler. A masked
// entry, a function mask and MSI-X disabled all deliver nothing; unmasking delivers what was held
// back, once. The PBA shows the held-back interrupt only where the VMM tracks it: pba=1 makes that
// a check, otherwise it is printed.
#include "arch.h"
#include "check.h"
#include "deadline.h"
#include "dma_viommu.h"
#include "idt.h"
#include "lapic.h"
#include "print.h"
#include "scenario.h"
#include "strutil.h"

#define kOutsideRam (1ull << 40)

enum {
  kVectorDma = 0x52,
  kQuietMs = 50,
  kIrqWaitMs = 1000,
  kSrc = 0,
  kDst = 1,
  kCanary = 0x99,
  kSeed = 0x5a,
};

static uint8_t bufs[2][kDmaPage] __attribute__((aligned(kDmaPage)));
static struct dma_engine engine;
static struct pci_msix msix;
static bool pba_required;
static volatile int dma_interrupts;

static INTERRUPT_HANDLER(dma_handler) {
  dma_interrupts++;
  lapic_eoi();
}

static uint64_t gpa(const void* p) { return (uint64_t)(uintptr_t)p; }

static int take_interrupts(uint32_t ms) {
  return lapic_take_vector(kVectorDma, &dma_interrupts, ms);
}

// True when nothing arrives for kQuietMs.
static bool quiet(void) { return take_interrupts(kQuietMs) == 0; }

static struct dma_result copy_ok(void) {
  dma_fill_pattern(bufs[kSrc], kDmaPage, kSeed);
  memset(bufs[kDst], kCanary, kDmaPage);
  return dma_engine_copy(&engine, gpa(bufs[kSrc]), gpa(bufs[kDst]), kDmaPage);
}

static bool check_capability(void) {
  pci_bdf_t bdf = engine.fn.bdf;
  if (!check(dma_engine_setup_msix(&engine, kVectorDma, false, &msix),
             "MSI-X capability found, table and PBA reachable")) {
    return false;
  }
  checkf(msix.table_size == 1 && msix.table_bar == 0 && msix.table_offset == kDmaMsixTable &&
             msix.pba_bar == 0 && msix.pba_offset == kDmaMsixPba,
         "one vector, table at BAR0+0x%x, PBA at BAR0+0x%x (%u vectors, table %u+0x%x, PBA "
         "%u+0x%x)",
         kDmaMsixTable, kDmaMsixPba, msix.table_size, msix.table_bar, msix.table_offset,
         msix.pba_bar, msix.pba_offset);
  struct msix_entry e = pci_msix_read_entry(&msix, 0);
  check(e.address == msi_address(lapic_id()) && e.data == msi_data(kVectorDma) &&
            !(e.vector_control & kMsixEntryMasked),
        "table entry 0 reads back as programmed");
  check(pci_read16(bdf, msix.cap + kMsixControl) & kMsixControlEnable,
        "MSI-X enable reads back set");
  return true;
}

static void check_one_per_completion(void) {
  for (int i = 0; i < 3; i++) {
    uint64_t before = dma_engine_completions(&engine);
    dma_fill_pattern(bufs[kSrc], kDmaPage, (uint8_t)(kSeed + i));
    memset(bufs[kDst], kCanary, kDmaPage);
    dma_engine_start(&engine, gpa(bufs[kSrc]), gpa(bufs[kDst]), kDmaPage);
    int n = take_interrupts(kIrqWaitMs);
    struct dma_result r = dma_engine_wait(&engine, kDmaCopyTimeoutMs);
    checkf(n == 1 && dma_ok(r) && r.completions == before + 1 &&
               dma_pattern_mismatch(bufs[kDst], kDmaPage, (uint8_t)(kSeed + i)) == kDmaPage,
           "copy %d: one completion interrupt (%d), data copied, completions %lu", i, n,
           r.completions);
  }
  struct dma_result r = dma_engine_copy(&engine, gpa(bufs[kSrc]), kOutsideRam, kDmaPage);
  int n = take_interrupts(kIrqWaitMs);
  checkf(dma_failed_with(r, kDmaErrDstUnmapped) && n == 1,
         "a failed copy (%s) also raises one completion interrupt (%d)", dma_error_name(r.error),
         n);
}

static void check_pba(bool want, const char* what) {
  bool pending = pci_msix_pending(&msix, 0);
  if (pba_required) {
    checkf(pending == want, "%s: PBA bit 0 reads %d", what, pending);
  } else {
    note("%s: PBA bit 0 reads %d (a check with pba=1)", what, pending);
  }
}

// Two copies while held back by `hold`; `release` must then deliver exactly one interrupt.
static void check_held_back(void (*hold)(bool), const char* what) {
  hold(true);
  struct dma_result r1 = copy_ok();
  struct dma_result r2 = copy_ok();
  checkf(dma_ok(r1) && dma_ok(r2) && quiet(), "%s: two copies finish and deliver nothing", what);
  check_pba(true, what);
  hold(false);
  int n = take_interrupts(kIrqWaitMs);
  checkf(n == 1, "%s: released, the held-back interrupt arrives once (%d)", what, n);
  check(quiet(), "and nothing more follows");
  check_pba(false, "after release");
}

static void mask_entry(bool masked) { pci_msix_mask_entry(&msix, 0, masked); }
static void mask_function(bool masked) { pci_msix_set_control(engine.fn.bdf, &msix, true, masked); }

static void check_disabled(void) {
  pci_msix_set_control(engine.fn.bdf, &msix, false, false);
  struct dma_result r = copy_ok();
  checkf(dma_ok(r) && quiet(), "MSI-X disabled: a copy delivers no MSI-X interrupt");
  pci_msix_set_control(engine.fn.bdf, &msix, true, false);
  int stale = take_interrupts(kQuietMs);
  note("MSI-X re-enabled: %d interrupts from the copy made while disabled", stale);
  r = copy_ok();
  int n = take_interrupts(kIrqWaitMs);
  checkf(dma_ok(r) && n == 1, "MSI-X re-enabled: the next copy interrupts again (%d)", n);
}

void scenario_msix(const struct boot_info* boot) {
  uint64_t pba = 0;
  pba_required = cmdline_get_uint(boot->cmdline, "pba", &pba) && pba != 0;
  irq_disable();
  legacy_pic_mask_all();
  idt_set_handler(kVectorDma, dma_handler);
  if (!dma_engines_init(&engine, 1) || !check_capability()) return;
  check(quiet(), "enabling MSI-X raised nothing by itself");
  check_one_per_completion();
  check_held_back(mask_entry, "entry 0 masked");
  check_held_back(mask_function, "function masked");
  check_disabled();
  checkf(idt_unexpected_interrupts() == 0, "no unexpected interrupts (%d)",
         idt_unexpected_interrupts());
}
