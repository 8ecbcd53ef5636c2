// test=dma-shared: two DMA engines (vfio-user functions) share one address space.
// Behind the virtio-iommu (default): an unattached engine reaches guest-physical memory with
// bypass on and nothing with bypass off; both endpoints are attached to one domain where one
// buffer range is mapped once; engine 0 copies src -> dst1 and engine 1 copies dst1 -> dst2, so
// dst2 holds the pattern only if engine 1 saw engine 0's result through the same mapping; device
// addresses are IOVAs, not GPAs; one UNMAP takes the range from both engines.
// mode=guest-ram: no vIOMMU, both engines in the built-in guest-ram address space (IOVA = GPA);
// the same chained copy with GPAs, and a copy outside guest RAM fails.
#include "check.h"
#include "deadline.h"
#include "dma_viommu.h"
#include "print.h"
#include "scenario.h"
#include "strutil.h"
#include "viommu_common.h"

#define kSharedIova 0x40000000ull
#define kOutsideRam (1ull << 40)
#define kRw (kIommuMapFRead | kIommuMapFWrite)

enum { kSrc, kDst1, kDst2, kPages, kCanary = 0xc3, kSeed = 0x11 };

static uint8_t bufs[kPages][kDmaPage] __attribute__((aligned(kDmaPage)));

static uint64_t gpa(const void* p) { return (uint64_t)(uintptr_t)p; }

static void reset_buffers(void) {
  dma_fill_pattern(bufs[kSrc], kDmaPage, kSeed);
  memset(bufs[kDst1], kCanary, kDmaPage);
  memset(bufs[kDst2], kCanary, kDmaPage);
}

// Engine 0 copies src -> dst1, engine 1 copies dst1 -> dst2; base is the bus address of src.
static void check_chained_copy(const struct dma_engine* engines, uint64_t base, const char* how) {
  reset_buffers();
  uint64_t before0 = dma_engine_completions(&engines[0]);
  uint64_t before1 = dma_engine_completions(&engines[1]);
  char what[96];
  snprintf(what, sizeof(what), "%s: engine 0 copies src to dst1", how);
  struct dma_result r = dma_engine_copy(&engines[0], base, base + kDmaPage, kDmaPage);
  check_dma_copied(r, bufs[kDst1], kDmaPage, kSeed, what);
  checkf(r.completions == before0 + 1, "%s: engine 0 counted one completion (%lu -> %lu)", how,
         before0, r.completions);
  snprintf(what, sizeof(what), "%s: engine 1 copies dst1 to dst2, seeing engine 0's result", how);
  r = dma_engine_copy(&engines[1], base + kDmaPage, base + 2 * kDmaPage, kDmaPage);
  check_dma_copied(r, bufs[kDst2], kDmaPage, kSeed, what);
  checkf(r.completions == before1 + 1, "%s: engine 1 counted one completion (%lu -> %lu)", how,
         before1, r.completions);
}

static void check_registers_read_back(const struct dma_engine* e) {
  dma_engine_start(e, 0x1234567000ull, 0x89abcde000ull, 0);
  struct dma_result r = dma_engine_wait(e, kDmaCopyTimeoutMs);
  check(dma_engine_read64(e, kDmaRegSrc) == 0x1234567000ull &&
            dma_engine_read64(e, kDmaRegDst) == 0x89abcde000ull,
        "engine registers read back what was written");
  checkf(dma_failed_with(r, kDmaErrBadLength), "a zero-length copy ends with bad-length (%s)",
         dma_error_name(r.error));
}

static void run_guest_ram(void) {
  static struct dma_engine engines[kDmaEngines];
  if (!dma_engines_init(engines, kDmaEngines)) return;
  check_registers_read_back(&engines[0]);
  check_chained_copy(engines, gpa(bufs[kSrc]), "guest-ram");
  reset_buffers();
  struct dma_result r = dma_engine_copy(&engines[1], gpa(bufs[kSrc]), kOutsideRam, kDmaPage);
  checkf(dma_failed_with(r, kDmaErrDstUnmapped),
         "guest-ram: a copy to a GPA outside guest RAM ends with dst-unmapped (%s/%s)",
         dma_state_name(r.state), dma_error_name(r.error));
  r = dma_engine_copy(&engines[1], kOutsideRam, gpa(bufs[kDst2]), kDmaPage);
  check_dma_refused(NULL, 1, r, kDmaErrSrcUnmapped, bufs[kDst2], kCanary, 0,
                    "guest-ram: a copy from a GPA outside guest RAM");
}

static void check_unattached(struct dma_viommu_env* env) {
  virtio_iommu_set_bypass(&env->iommu, true);
  reset_buffers();
  struct dma_result b =
      dma_engine_copy(&env->engines[0], gpa(bufs[kSrc]), gpa(bufs[kDst1]), kDmaPage);
  check_dma_copied(b, bufs[kDst1], kDmaPage, kSeed,
                   "bypass on: unattached engine 0 copies between GPAs");
  virtio_iommu_set_bypass(&env->iommu, false);
  reset_buffers();
  struct dma_result r =
      dma_engine_copy(&env->engines[0], gpa(bufs[kSrc]), gpa(bufs[kDst1]), kDmaPage);
  check_dma_refused(env, 0, r, kDmaErrSrcUnmapped, bufs[kDst1], kCanary, gpa(bufs[kSrc]),
                    "bypass off: unattached engine 0 copying between GPAs");
}

static void check_unmap_reaches_both(struct dma_viommu_env* env, uint32_t domain) {
  check_status(iommu_unmap(&env->iommu, domain, kSharedIova, kSharedIova + kPages * kDmaPage - 1),
               kIommuSOk, "UNMAP the shared range");
  for (int i = 0; i < kDmaEngines; i++) {
    reset_buffers();
    struct dma_result r =
        dma_engine_copy(&env->engines[i], kSharedIova, kSharedIova + 2 * kDmaPage, kDmaPage);
    char what[64];
    snprintf(what, sizeof(what), "after UNMAP: engine %d copying through the shared range", i);
    check_dma_refused(env, i, r, kDmaErrSrcUnmapped, bufs[kDst2], kCanary, kSharedIova, what);
  }
}

static void run_viommu(const struct boot_info* boot) {
  static struct dma_viommu_env env;
  if (!dma_viommu_env_init(&env, boot)) return;
  uint32_t domain = env.iommu.config.domain_start + 1;
  check_unattached(&env);
  for (int i = 0; i < kDmaEngines; i++) {
    char what[48];
    snprintf(what, sizeof(what), "ATTACH engine %d to the shared domain", i);
    check_status(iommu_attach(&env.iommu, domain, env.endpoint[i], 0), kIommuSOk, what);
  }
  if (!check_status(iommu_map(&env.iommu, domain, kSharedIova, kSharedIova + kPages * kDmaPage - 1,
                              gpa(bufs[0]), kRw),
                    kIommuSOk, "MAP src, dst1 and dst2 once in the shared domain")) {
    return;
  }
  check_chained_copy(env.engines, kSharedIova, "shared domain");
  // hold_ms=N keeps the shared domain as it is for N ms, so that a demo can list it over the API.
  uint64_t hold_ms = 0;
  if (cmdline_get_uint(boot->cmdline, "hold_ms", &hold_ms) && hold_ms > 0 && hold_ms <= 60000) {
    printf("holding the shared domain for %lu ms\n", hold_ms);
    struct deadline d = deadline_after_ms((uint32_t)hold_ms);
    while (!deadline_expired(&d)) {
    }
  }
  reset_buffers();
  struct dma_result r =
      dma_engine_copy(&env.engines[0], gpa(bufs[kSrc]), kSharedIova + kDmaPage, kDmaPage);
  check_dma_refused(&env, 0, r, kDmaErrSrcUnmapped, bufs[kDst1], kCanary, gpa(bufs[kSrc]),
                    "shared domain: a GPA is not an IOVA");
  check_unmap_reaches_both(&env, domain);
}

void scenario_dma_shared(const struct boot_info* boot) {
  char mode[16] = "viommu";
  cmdline_get(boot->cmdline, "mode", mode, sizeof(mode));
  if (strcmp(mode, "guest-ram") == 0) {
    run_guest_ram();
  } else if (checkf(strcmp(mode, "viommu") == 0, "mode=%s is viommu or guest-ram", mode)) {
    run_viommu(boot);
  }
}
