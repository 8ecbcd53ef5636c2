// test=viommu-dma: two virtio-blk disks (tags 'a' and 'b') behind the virtio-iommu, DMA through
// IOVAs. Bypass on lets an unattached disk reach guest-physical memory, bypass off stops it; a
// shared domain serves both disks from one mapping; per-device domains isolate them: a read into
// an IOVA mapped only in the other disk's domain, or mapped read-only, or just unmapped, must
// fail (error status or DEVICE_NEEDS_RESET), leave memory untouched and report a fault event.
#include "check.h"
#include "print.h"
#include "scenario.h"
#include "strutil.h"
#include "viommu_common.h"

#define kRingIova 0x40000000ull  // the DMA pool (rings, request headers) in every domain
#define kDataIova0 0x50000000ull
#define kDataIova1 0x60000000ull
#define kReadOnlyIova 0x70000000ull
#define kRw (kIommuMapFRead | kIommuMapFWrite)

enum { kDataPages = 4, kCanary = 0xa5, kFaultWaitMs = 1000 };

static uint8_t data[kDataPages][kViommuPage] __attribute__((aligned(kViommuPage)));

static uint64_t gpa(const void* p) { return (uint64_t)(uintptr_t)p; }

static uint64_t pool_to_iova(void* ctx, uint64_t addr) {
  (void)ctx;
  return addr - dma_pool_base() + kRingIova;
}

static bool start_disk(struct viommu_env* env, int i, bool translated) {
  struct virtio_blk* b = &env->disks[i];
  b->pci.bus_addr = translated ? pool_to_iova : NULL;
  const char* error = "";
  if (virtio_blk_start(b, 0, VIRTIO_MSI_NO_VECTOR, &error)) return true;
  printf("virtio-blk %d: %s\n", i, error);
  return false;
}

static struct blk_result read_into(struct viommu_env* env, int i, uint64_t sector, uint64_t addr,
                                   bool is_iova) {
  return virtio_blk_request(&env->disks[i], kBlkTypeIn, sector, addr, kBlkSectorSize, is_iova,
                            false);
}

static bool page_is_canary(const uint8_t* page) {
  for (int i = 0; i < kBlkSectorSize; i++) {
    if (page[i] != kCanary) return false;
  }
  return true;
}

// Waits for a fault report from endpoint; checks reason, flags and address when present.
static void check_fault_event(struct viommu_env* env, uint32_t endpoint, uint64_t iova,
                              const char* what) {
  struct virtio_iommu_fault f = {0};
  bool found = virtio_iommu_await_fault(&env->iommu, endpoint, kFaultWaitMs, &f);
  if (!checkf(found, "%s: fault event from endpoint 0x%x", what, endpoint)) return;
  checkf(f.reason == kIommuFaultRMapping, "%s: fault reason MAPPING (%u)", what, f.reason);
  char name[96], detail[32];
  snprintf(name, sizeof(name), "%s: fault flags say write", what);
  snprintf(detail, sizeof(detail), "flags 0x%x", f.flags);
  check_known_qemu_difference(env, f.flags & kIommuFaultFWrite, name, detail);
  checkf((f.flags & kIommuFaultFAddress) && f.address >= iova && f.address < iova + kViommuPage,
         "%s: fault address 0x%lx in the target page 0x%lx", what, f.address, iova);
}

// The request must not succeed and must not reach memory; the device may answer with an error
// status or give up on the chain with DEVICE_NEEDS_RESET.
// QEMU 7.2 drops the data and completes the request with S_OK: a departure from 5.2.6, where
// S_OK reports success.
static void check_refused(const struct viommu_env* env, struct blk_result r, const uint8_t* page,
                          const char* what) {
  char name[96], detail[48];
  snprintf(name, sizeof(name), "%s: error status or DEVICE_NEEDS_RESET", what);
  snprintf(detail, sizeof(detail), "completed %d, status %u, needs_reset %d", r.completed, r.status,
           r.needs_reset);
  check_spec_known_qemu_departure(
      env, (r.completed && r.status != kBlkStatusOk && r.status != kBlkNoStatus) || r.needs_reset,
      name, detail);
  checkf(page_is_canary(page), "%s: no data reached guest memory", what);
}

static void check_bypass(struct viommu_env* env) {
  virtio_iommu_set_bypass(&env->iommu, true);
  memset(data[0], kCanary, kViommuPage);
  if (start_disk(env, 0, false)) {
    struct blk_result r = read_into(env, 0, 1, gpa(data[0]), false);
    check(r.completed && r.status == kBlkStatusOk && blk_pattern_mismatches(data[0], 'a', 1) == 0,
          "bypass on: unattached disk 0 reads into guest-physical memory");
  } else {
    check(false, "bypass on: disk 0 started");
  }
  virtio_pci_reset(&env->disks[0].pci);
  virtio_iommu_set_bypass(&env->iommu, false);
  memset(data[0], kCanary, kViommuPage);
  struct blk_result r = {0};
  if (start_disk(env, 0, false)) r = read_into(env, 0, 1, gpa(data[0]), false);
  check(!(r.completed && r.status == kBlkStatusOk) && page_is_canary(data[0]),
        "bypass off: unattached disk 0 cannot reach guest-physical memory");
  note("bypass off: %d fault reports", virtio_iommu_drain_faults(&env->iommu));
  virtio_pci_reset(&env->disks[0].pci);
}

static bool map_rings(struct viommu_env* env, uint32_t domain) {
  return check_status(iommu_map(&env->iommu, domain, kRingIova, kRingIova + dma_pool_size() - 1,
                                dma_pool_base(), kRw),
                      kIommuSOk, "MAP the ring pool");
}

static void check_shared_domain(struct viommu_env* env, uint32_t d) {
  struct virtio_iommu* io = &env->iommu;
  check_status(iommu_attach(io, d, env->endpoint[0], 0), kIommuSOk, "ATTACH disk 0 (shared)");
  check_status(iommu_attach(io, d, env->endpoint[1], 0), kIommuSOk, "ATTACH disk 1 (shared)");
  map_rings(env, d);
  check_status(iommu_map(io, d, kDataIova0, kDataIova0 + kViommuPage - 1, gpa(data[0]), kRw),
               kIommuSOk, "MAP one data page for both disks");
  memset(data[0], kCanary, kViommuPage);
  if (!check(start_disk(env, 0, true) && start_disk(env, 1, true),
             "both disks started with rings at IOVAs (ACCESS_PLATFORM)")) {
    return;
  }
  struct blk_result r0 = read_into(env, 0, 1, kDataIova0, true);
  struct blk_result r1 = read_into(env, 1, 2, kDataIova0 + kBlkSectorSize, true);
  check(r0.completed && r0.status == kBlkStatusOk && r1.completed && r1.status == kBlkStatusOk,
        "shared domain: both reads through the same IOVA page complete with S_OK");
  check(blk_pattern_mismatches(data[0], 'a', 1) == 0 &&
            blk_pattern_mismatches(data[0] + kBlkSectorSize, 'b', 2) == 0,
        "shared domain: disk 0's sector 1 and disk 1's sector 2 landed side by side");
}

// Each disk in its own domain; disk 1 also gets a read-only page.
static void move_to_own_domains(struct viommu_env* env, uint32_t d0, uint32_t d1) {
  struct virtio_iommu* io = &env->iommu;
  virtio_pci_reset(&env->disks[0].pci);
  virtio_pci_reset(&env->disks[1].pci);
  check_status(iommu_attach(io, d0, env->endpoint[0], 0), kIommuSOk, "ATTACH disk 0 to its own");
  check_status(iommu_attach(io, d1, env->endpoint[1], 0), kIommuSOk, "ATTACH disk 1 to its own");
  map_rings(env, d0);
  map_rings(env, d1);
  check_status(iommu_map(io, d0, kDataIova0, kDataIova0 + kViommuPage - 1, gpa(data[1]), kRw),
               kIommuSOk, "MAP disk 0's data page");
  check_status(iommu_map(io, d1, kDataIova1, kDataIova1 + kViommuPage - 1, gpa(data[2]), kRw),
               kIommuSOk, "MAP disk 1's data page");
  check_status(iommu_map(io, d1, kReadOnlyIova, kReadOnlyIova + kViommuPage - 1, gpa(data[3]),
                         kIommuMapFRead),
               kIommuSOk, "MAP a read-only page for disk 1");
}

static void check_isolation(struct viommu_env* env) {
  memset(data[1], kCanary, kViommuPage);
  memset(data[2], kCanary, kViommuPage);
  memset(data[3], kCanary, kViommuPage);
  if (!check(start_disk(env, 0, true) && start_disk(env, 1, true), "disks restarted")) return;
  struct blk_result r = read_into(env, 0, 3, kDataIova0, true);
  check(r.status == kBlkStatusOk && blk_pattern_mismatches(data[1], 'a', 3) == 0,
        "per-device domains: disk 0 reads through its own IOVA");
  r = read_into(env, 1, 4, kDataIova1, true);
  check(r.status == kBlkStatusOk && blk_pattern_mismatches(data[2], 'b', 4) == 0,
        "per-device domains: disk 1 reads through its own IOVA");
  virtio_iommu_drain_faults(&env->iommu);
  r = read_into(env, 1, 5, kReadOnlyIova, true);
  check_refused(env, r, data[3], "disk 1 read into a read-only IOVA");
  check_fault_event(env, env->endpoint[1], kReadOnlyIova, "read-only IOVA");
  memset(data[2], kCanary, kViommuPage);
  r = read_into(env, 0, 6, kDataIova1, true);
  check_refused(env, r, data[2], "disk 0 read into disk 1's IOVA");
  check_fault_event(env, env->endpoint[0], kDataIova1, "other domain's IOVA");
}

static void check_unmap_invalidates(struct viommu_env* env, uint32_t d0) {
  virtio_pci_reset(&env->disks[0].pci);
  if (!check(start_disk(env, 0, true), "disk 0 restarted")) return;
  memset(data[1], kCanary, kViommuPage);
  struct blk_result r = read_into(env, 0, 7, kDataIova0, true);
  check(r.status == kBlkStatusOk && blk_pattern_mismatches(data[1], 'a', 7) == 0,
        "disk 0 reads through its IOVA before UNMAP");
  check_status(iommu_unmap(&env->iommu, d0, kDataIova0, kDataIova0 + kViommuPage - 1), kIommuSOk,
               "UNMAP disk 0's data page");
  memset(data[1], kCanary, kViommuPage);
  r = read_into(env, 0, 8, kDataIova0, true);
  check_refused(env, r, data[1], "disk 0 read into the IOVA just unmapped");
  check_fault_event(env, env->endpoint[0], kDataIova0, "unmapped IOVA");
}

void scenario_viommu_dma(const struct boot_info* boot) {
  static struct viommu_env env;
  if (!viommu_env_init(&env, boot)) return;
  uint32_t base = env.iommu.config.domain_start;
  check_bypass(&env);
  check_shared_domain(&env, base + 1);
  move_to_own_domains(&env, base + 2, base + 3);
  check_isolation(&env);
  check_unmap_invalidates(&env, base + 2);
  check(!(virtio_pci_status(&env.iommu.pci) & kVirtioStatusNeedsReset),
        "virtio-iommu never asked for a reset");
}
