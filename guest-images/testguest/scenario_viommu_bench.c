// test=viommu-bench: guest-observed MAP+UNMAP round trips per second through the virtio-iommu.
// One endpoint is attached to a domain; the guest then maps a page, unmaps it, and counts pairs
// for `ms` milliseconds (default 2000) of LAPIC timer time. Prints
//   viommu-bench: <pairs> MAP+UNMAP round trips in <ms> ms = <rate> per second
// for bench/viommu_bench.py to read. Every status must be S_OK.
#include "check.h"
#include "deadline.h"
#include "print.h"
#include "scenario.h"
#include "viommu_common.h"

enum { kBenchDomain = 7, kBenchIova = 0x40000000 };

void scenario_viommu_bench(const struct boot_info* boot) {
  static struct viommu_env env;
  if (!viommu_env_init(&env, boot)) return;
  uint64_t ms = 2000;
  cmdline_get_uint(boot->cmdline, "ms", &ms);
  if (ms == 0 || ms > 60000) ms = 2000;

  struct iommu_result r = iommu_attach(&env.iommu, kBenchDomain, env.endpoint[0], 0);
  if (!check_status(r, kIommuSOk, "ATTACH for the benchmark")) return;
  // Any page of guest RAM will do as the target: nothing does DMA through it.
  const uint64_t phys = 0x200000;
  uint64_t pairs = 0, failures = 0;
  struct deadline d = deadline_after_ms((uint32_t)ms);
  while (!deadline_expired(&d)) {
    r = iommu_map(&env.iommu, kBenchDomain, kBenchIova, kBenchIova + kViommuPage - 1, phys,
                  kIommuMapFRead | kIommuMapFWrite);
    if (!r.completed || r.status != kIommuSOk) failures++;
    r = iommu_unmap(&env.iommu, kBenchDomain, kBenchIova, kBenchIova + kViommuPage - 1);
    if (!r.completed || r.status != kIommuSOk) failures++;
    pairs++;
  }
  uint32_t elapsed = deadline_elapsed_ms(&d);
  checkf(failures == 0, "every MAP and UNMAP returned S_OK (%lu failed)", failures);
  printf("viommu-bench: %lu MAP+UNMAP round trips in %u ms = %lu per second\n", pairs, elapsed,
         elapsed ? pairs * 1000 / elapsed : 0);
  check(iommu_detach(&env.iommu, kBenchDomain, env.endpoint[0]).status == kIommuSOk,
        "DETACH after the benchmark");
}
