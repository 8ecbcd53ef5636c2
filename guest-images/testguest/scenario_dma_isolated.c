// test=dma-isolated: two DMA engines behind the virtio-iommu, each attached to its own domain
// with its own mappings. Each copies through its own IOVAs; a copy through an IOVA mapped only in
// the other engine's domain fails with an error STATUS and leaves memory alone (and raises a fault
// event for that endpoint with fault_events=1); a read-only mapping can be read but not written;
// UNMAP stops exactly the unmapped page; DETACH stops all of the engine's DMA while the other
// engine goes on.
// Last, an UNMAP that lands while a 64 MiB copy runs: afterwards the engine writes nothing more
// to the unmapped range, however far the copy had got.
// same_group=1: the engines are functions of one isolation group, which may not be split across
// address spaces: ATTACH of the second to a domain of its own is refused, and the refused engine
// gets no DMA until it joins its sibling's domain.
#include "arch.h"
#include "check.h"
#include "dma_viommu.h"
#include "print.h"
#include "scenario.h"
#include "strutil.h"
#include "viommu_common.h"

#define kIovaA 0x50000000ull  // engine 0: src, dst, dst2
#define kIovaB 0x60000000ull  // engine 1: src, dst
#define kIovaReadOnly 0x70000000ull
#define kRw (kIommuMapFRead | kIommuMapFWrite)
// The UNMAP race: two 64 MiB ranges of guest RAM above the image, never touched by the guest
// except for the pages it checks.
#define kRaceSrcGpa 0x4000000ull
#define kRaceDstGpa 0x8000000ull
#define kRaceSrcIova 0x10000000ull
#define kRaceDstIova 0x30000000ull
#define kRaceLength (64u << 20)

enum {
  kSrcA,
  kDstA,
  kDst2A,
  kSrcB,
  kDstB,
  kReadOnlyB,
  kPages,
  kCanary = 0x3c,
  kSeedA = 0x21,
  kSeedB = 0x42,
  kSeedReadOnly = 0x63,
  kRaceTimeoutMs = 10000,
};

static uint8_t bufs[kPages][kDmaPage] __attribute__((aligned(kDmaPage)));
static struct dma_viommu_env env;

static uint64_t gpa(const void* p) { return (uint64_t)(uintptr_t)p; }
static uint64_t iova_a(int page) { return kIovaA + (uint64_t)(page - kSrcA) * kDmaPage; }
static uint64_t iova_b(int page) { return kIovaB + (uint64_t)(page - kSrcB) * kDmaPage; }

static void reset_buffers(void) {
  dma_fill_pattern(bufs[kSrcA], kDmaPage, kSeedA);
  dma_fill_pattern(bufs[kSrcB], kDmaPage, kSeedB);
  dma_fill_pattern(bufs[kReadOnlyB], kDmaPage, kSeedReadOnly);
  memset(bufs[kDstA], kCanary, kDmaPage);
  memset(bufs[kDst2A], kCanary, kDmaPage);
  memset(bufs[kDstB], kCanary, kDmaPage);
}

static struct dma_result copy(int engine, uint64_t src, uint64_t dst) {
  reset_buffers();
  return dma_engine_copy(&env.engines[engine], src, dst, kDmaPage);
}

static bool set_up_domains(uint32_t da, uint32_t db) {
  struct virtio_iommu* io = &env.iommu;
  bool ok = check_status(iommu_attach(io, da, env.endpoint[0], 0), kIommuSOk,
                         "ATTACH engine 0 to its own domain");
  ok &= check_status(iommu_attach(io, db, env.endpoint[1], 0), kIommuSOk,
                     "ATTACH engine 1 to its own domain");
  // One MAP per page: UNMAP may not split a mapping (5.13.6.6), and check_unmap takes one page.
  for (int page = kSrcA; page <= kDst2A; page++) {
    ok &= check_status(
        iommu_map(io, da, iova_a(page), iova_a(page) + kDmaPage - 1, gpa(bufs[page]), kRw),
        kIommuSOk, "MAP a page of engine 0's src, dst and dst2");
  }
  ok &= check_status(iommu_map(io, db, kIovaB, kIovaB + 2 * kDmaPage - 1, gpa(bufs[kSrcB]), kRw),
                     kIommuSOk, "MAP engine 1's src and dst");
  ok &= check_status(iommu_map(io, db, kIovaReadOnly, kIovaReadOnly + kDmaPage - 1,
                               gpa(bufs[kReadOnlyB]), kIommuMapFRead),
                     kIommuSOk, "MAP a read-only page for engine 1");
  return ok;
}

static void check_own_mappings(void) {
  struct dma_result r = copy(0, iova_a(kSrcA), iova_a(kDstA));
  check_dma_copied(r, bufs[kDstA], kDmaPage, kSeedA, "engine 0 copies through its own IOVAs");
  r = copy(1, iova_b(kSrcB), iova_b(kDstB));
  check_dma_copied(r, bufs[kDstB], kDmaPage, kSeedB, "engine 1 copies through its own IOVAs");
  r = copy(1, kIovaReadOnly, iova_b(kDstB));
  check_dma_copied(r, bufs[kDstB], kDmaPage, kSeedReadOnly, "engine 1 reads its read-only page");
}

// The read-only page holds a pattern, not canary bytes; it must still hold it.
static void check_read_only_page_intact(void) {
  uint32_t at = dma_pattern_mismatch(bufs[kReadOnlyB], kDmaPage, kSeedReadOnly);
  checkf(at == kDmaPage, "the read-only page is intact (first difference at %u)", at);
}

static void check_other_domain(void) {
  struct dma_result r = copy(0, iova_a(kSrcA), iova_b(kDstB));
  check_dma_refused(&env, 0, r, kDmaErrDstUnmapped, bufs[kDstB], kCanary, iova_b(kDstB),
                    "engine 0 writes to engine 1's IOVA");
  r = copy(0, iova_b(kSrcB), iova_a(kDstA));
  check_dma_refused(&env, 0, r, kDmaErrSrcUnmapped, bufs[kDstA], kCanary, iova_b(kSrcB),
                    "engine 0 reads from engine 1's IOVA");
  r = copy(1, iova_b(kSrcB), iova_a(kDstA));
  check_dma_refused(&env, 1, r, kDmaErrDstUnmapped, bufs[kDstA], kCanary, iova_a(kDstA),
                    "engine 1 writes to engine 0's IOVA");
  r = copy(1, iova_b(kSrcB), kIovaReadOnly);
  check_dma_refused(&env, 1, r, kDmaErrDstReadOnly, NULL, 0, kIovaReadOnly,
                    "engine 1 writes to its read-only IOVA");
  check_read_only_page_intact();
}

static void check_unmap(uint32_t da) {
  check_status(iommu_unmap(&env.iommu, da, iova_a(kDstA), iova_a(kDstA) + kDmaPage - 1), kIommuSOk,
               "UNMAP engine 0's dst page");
  struct dma_result r = copy(0, iova_a(kSrcA), iova_a(kDstA));
  check_dma_refused(&env, 0, r, kDmaErrDstUnmapped, bufs[kDstA], kCanary, iova_a(kDstA),
                    "engine 0 writes to the IOVA just unmapped");
  r = copy(0, iova_a(kSrcA), iova_a(kDst2A));
  check_dma_copied(r, bufs[kDst2A], kDmaPage, kSeedA, "engine 0's pages left mapped still work");
}

static void check_detach(uint32_t da) {
  check_status(iommu_detach(&env.iommu, da, env.endpoint[0]), kIommuSOk,
               "DETACH engine 0 from its domain");
  struct dma_result r = copy(0, iova_a(kSrcA), iova_a(kDst2A));
  check_dma_refused(&env, 0, r, kDmaErrSrcUnmapped, bufs[kDst2A], kCanary, iova_a(kSrcA),
                    "engine 0 copies after DETACH");
  r = copy(1, iova_b(kSrcB), iova_b(kDstB));
  check_dma_copied(r, bufs[kDstB], kDmaPage, kSeedB, "engine 1 goes on after engine 0's DETACH");
}

static bool ram_covers(const struct boot_info* boot, uint64_t base, uint64_t size) {
  for (uint32_t i = 0; boot->memmap && i < boot->memmap_entries; i++) {
    const struct hvm_memmap_entry* m = &boot->memmap[i];
    if (m->type == kMemmapRam && m->addr <= base && base + size <= m->addr + m->size) return true;
  }
  return false;
}

static void check_unmap_during_copy(const struct boot_info* boot, uint32_t db) {
  if (!ram_covers(boot, kRaceSrcGpa, kRaceDstGpa + kRaceLength - kRaceSrcGpa)) {
    note("UNMAP during a copy: skipped, RAM does not cover 0x%llx-0x%llx", kRaceSrcGpa,
         kRaceDstGpa + kRaceLength);
    return;
  }
  struct virtio_iommu* io = &env.iommu;
  check_status(
      iommu_map(io, db, kRaceSrcIova, kRaceSrcIova + kRaceLength - 1, kRaceSrcGpa, kIommuMapFRead),
      kIommuSOk, "MAP a 64 MiB source for engine 1");
  check_status(iommu_map(io, db, kRaceDstIova, kRaceDstIova + kRaceLength - 1, kRaceDstGpa, kRw),
               kIommuSOk, "MAP a 64 MiB destination for engine 1");
  uint8_t* first = (uint8_t*)(uintptr_t)kRaceDstGpa;
  uint8_t* last = first + kRaceLength - kDmaPage;
  memset((void*)(uintptr_t)kRaceSrcGpa, kSeedB, kDmaPage);
  memset((void*)(uintptr_t)(kRaceSrcGpa + kRaceLength - kDmaPage), kSeedB, kDmaPage);
  dma_engine_start(&env.engines[1], kRaceSrcIova, kRaceDstIova, kRaceLength);
  check_status(iommu_unmap(io, db, kRaceDstIova, kRaceDstIova + kRaceLength - 1), kIommuSOk,
               "UNMAP the destination while engine 1 copies into it");
  bool busy_after_unmap = (dma_engine_status(&env.engines[1]) & 0xff) == kDmaStateBusy;
  // Once UNMAP has completed the device may not write there: anything the copy still does must
  // miss these canaries.
  memset(first, kCanary, kDmaPage);
  memset(last, kCanary, kDmaPage);
  compiler_barrier();
  struct dma_result r = dma_engine_wait(&env.engines[1], kRaceTimeoutMs);
  checkf(dma_ok(r) || dma_failed_with(r, kDmaErrDstUnmapped),
         "the copy raced by UNMAP ends done or dst-unmapped (%s/%s)",
         r.finished ? dma_state_name(r.state) : "still busy", dma_error_name(r.error));
  note("UNMAP during a copy: the copy %s; still busy when UNMAP completed: %s",
       dma_ok(r) ? "finished" : "was cut short", busy_after_unmap ? "yes" : "no");
  check(dma_all_bytes(first, kDmaPage, kCanary) && dma_all_bytes(last, kDmaPage, kCanary),
        "after UNMAP completed the engine wrote nothing more to the range");
  check_status(iommu_unmap(io, db, kRaceSrcIova, kRaceSrcIova + kRaceLength - 1), kIommuSOk,
               "UNMAP the 64 MiB source");
}

static void check_group_not_split(uint32_t da, uint32_t db) {
  struct virtio_iommu* io = &env.iommu;
  check_status(iommu_attach(io, da, env.endpoint[0], 0), kIommuSOk, "ATTACH engine 0");
  check_status(iommu_map(io, da, kIovaA, kIovaA + 3 * kDmaPage - 1, gpa(bufs[kSrcA]), kRw),
               kIommuSOk, "MAP engine 0's pages");
  struct iommu_result r = iommu_attach(io, db, env.endpoint[1], 0);
  checkf(r.completed && r.status != kIommuSOk,
         "ATTACH of engine 0's group sibling to another domain is refused (%s)",
         r.completed ? iommu_status_name(r.status) : "no completion");
  struct dma_result d = copy(1, iova_a(kSrcA), iova_a(kDstA));
  check_dma_refused(&env, 1, d, kDmaErrSrcUnmapped, bufs[kDstA], kCanary, iova_a(kSrcA),
                    "the refused sibling copies through engine 0's IOVAs");
  check_status(iommu_attach(io, da, env.endpoint[1], 0), kIommuSOk,
               "ATTACH the sibling to engine 0's domain");
  d = copy(1, iova_a(kSrcA), iova_a(kDstA));
  check_dma_copied(d, bufs[kDstA], kDmaPage, kSeedA, "the sibling copies in the shared domain");
}

void scenario_dma_isolated(const struct boot_info* boot) {
  if (!dma_viommu_env_init(&env, boot)) return;
  uint32_t da = env.iommu.config.domain_start + 1;
  uint32_t db = env.iommu.config.domain_start + 2;
  uint64_t same_group = 0;
  if (cmdline_get_uint(boot->cmdline, "same_group", &same_group) && same_group) {
    check_group_not_split(da, db);
    return;
  }
  if (!set_up_domains(da, db)) return;
  check_own_mappings();
  check_other_domain();
  check_unmap(da);
  check_detach(da);
  check_unmap_during_copy(boot, db);
}
