// The UNMAP examples of virtio 1.2 section 5.13.6.6, one by one, in page units from a base IOVA,
// each on a blank address space. Whether a page is mapped is observed with MAP itself: a MAP
// over a mapped page is refused with S_INVAL, one over a free page succeeds (and is undone).
#include "check.h"
#include "print.h"
#include "viommu_common.h"

enum { kAllPages = 32 };

struct unmap_ctx {
  struct viommu_env* env;
  uint32_t domain;
  uint64_t iova;
  uint64_t phys;
};

static uint64_t va(const struct unmap_ctx* c, uint64_t page) {
  return c->iova + page * kViommuPage;
}

static uint8_t map_pages(const struct unmap_ctx* c, uint64_t first, uint64_t last) {
  struct iommu_result r =
      iommu_map(&c->env->iommu, c->domain, va(c, first), va(c, last + 1) - 1,
                c->phys + first * kViommuPage, kIommuMapFRead | kIommuMapFWrite);
  return r.completed ? r.status : kIommuNoWrite;
}

static uint8_t unmap_pages(const struct unmap_ctx* c, uint64_t first, uint64_t last) {
  struct iommu_result r = iommu_unmap(&c->env->iommu, c->domain, va(c, first), va(c, last + 1) - 1);
  return r.completed ? r.status : kIommuNoWrite;
}

// True when page is covered by some mapping; leaves the address space as it found it.
static bool page_mapped(const struct unmap_ctx* c, uint64_t page) {
  uint8_t s = map_pages(c, page, page);
  if (s == kIommuSOk) unmap_pages(c, page, page);
  return s != kIommuSOk;
}

static void blank(const struct unmap_ctx* c) { unmap_pages(c, 0, kAllPages - 1); }

static bool maps_ok(const struct unmap_ctx* c, uint64_t a0, uint64_t a1, uint64_t b0, uint64_t b1) {
  bool ok = map_pages(c, a0, a1) == kIommuSOk;
  if (b1 >= b0) ok &= map_pages(c, b0, b1) == kIommuSOk;
  return ok;
}

static void examples_that_succeed(const struct unmap_ctx* c) {
  blank(c);
  check(unmap_pages(c, 0, 4) == kIommuSOk, "UNMAP example 1: unmap(0,4) on nothing is S_OK");

  bool ok = maps_ok(c, 0, 9, 1, 0) && unmap_pages(c, 0, 9) == kIommuSOk;
  check(ok && !page_mapped(c, 0) && !page_mapped(c, 9),
        "UNMAP example 2: map(0,9); unmap(0,9) succeeds and removes it");
  blank(c);

  ok = maps_ok(c, 0, 4, 5, 9) && unmap_pages(c, 0, 9) == kIommuSOk;
  check(ok && !page_mapped(c, 0) && !page_mapped(c, 5),
        "UNMAP example 3: map(0,4) map(5,9); unmap(0,9) removes both");
  blank(c);

  ok = maps_ok(c, 0, 4, 5, 9) && unmap_pages(c, 0, 4) == kIommuSOk;
  check(ok && !page_mapped(c, 0) && page_mapped(c, 5) && page_mapped(c, 9),
        "UNMAP example 5: map(0,4) map(5,9); unmap(0,4) removes only the first");
  blank(c);

  ok = maps_ok(c, 0, 4, 1, 0) && unmap_pages(c, 0, 9) == kIommuSOk;
  check(ok && !page_mapped(c, 0), "UNMAP example 6: map(0,4); unmap(0,9) succeeds and removes it");
  blank(c);

  ok = maps_ok(c, 0, 4, 10, 14) && unmap_pages(c, 0, 14) == kIommuSOk;
  check(ok && !page_mapped(c, 0) && !page_mapped(c, 10),
        "UNMAP example 7: map(0,4) map(10,14); unmap(0,14) removes both");
  blank(c);
}

// Example 4 and the same rule with a second, wholly covered mapping in the range: the split is
// refused with S_RANGE and nothing at all is removed.
static void examples_that_split(const struct unmap_ctx* c) {
  bool ok = maps_ok(c, 0, 9, 1, 0);
  uint8_t s = unmap_pages(c, 0, 4);
  checkf(ok && s == kIommuSRange, "UNMAP example 4: map(0,9); unmap(0,4) fails with S_RANGE (%s)",
         iommu_status_name(s));
  check(page_mapped(c, 0) && page_mapped(c, 9), "UNMAP example 4: the mapping is left whole");
  blank(c);

  char detail[96];
  ok = maps_ok(c, 0, 4, 5, 14);
  s = unmap_pages(c, 0, 9);
  checkf(ok && s == kIommuSRange, "map(0,4) map(5,14); unmap(0,9) fails with S_RANGE (%s)",
         iommu_status_name(s));
  bool first_kept = page_mapped(c, 0);
  snprintf(detail, sizeof(detail), "after S_RANGE the wholly covered map(0,4) is %s",
           first_kept ? "kept" : "gone");
  check_spec_known_qemu_departure(c->env, first_kept && page_mapped(c, 5),
                                  "a refused split UNMAP removes no mapping", detail);
  blank(c);

  ok = maps_ok(c, 0, 9, 10, 14);
  s = unmap_pages(c, 5, 14);
  checkf(ok && s == kIommuSRange, "map(0,9) map(10,14); unmap(5,14) fails with S_RANGE (%s)",
         iommu_status_name(s));
  bool last_kept = page_mapped(c, 10);
  snprintf(detail, sizeof(detail), "after S_RANGE the wholly covered map(10,14) is %s",
           last_kept ? "kept" : "gone");
  check_spec_known_qemu_departure(c->env, last_kept && page_mapped(c, 0),
                                  "a refused split UNMAP removes no mapping (split first)", detail);
  blank(c);
}

void viommu_unmap_examples(struct viommu_env* env, uint32_t domain, uint64_t iova, uint64_t phys) {
  struct unmap_ctx c = {env, domain, iova, phys};
  examples_that_succeed(&c);
  examples_that_split(&c);
  check(
      unmap_pages(&c, 0, kAllPages - 1) == kIommuSOk && !page_mapped(&c, 0) && !page_mapped(&c, 14),
      "an UNMAP over the whole area leaves it blank");
}
