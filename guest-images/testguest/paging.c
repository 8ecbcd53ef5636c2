#include "paging.h"

enum {
  kPageDirEntries = 512,
  kSparePageDirs = 8,
  kPresentRw = 0x3,
  kLargeUncached = 0x9b,  // present, writable, PWT, PCD, 2 MiB page
  kUncachedBits = 0x18,   // PWT | PCD
};

#define kGiB (1ull << 30)
#define kLargePage (1ull << 21)
#define kPdptReach (512 * kGiB)  // PML4 entry 0 is the only one entry.S fills

extern uint64_t boot_pdpt[kPageDirEntries];
extern uint64_t boot_pd[4 * kPageDirEntries];  // 0-4 GiB, one entry per 2 MiB

static uint64_t spare_dirs[kSparePageDirs][kPageDirEntries] __attribute__((aligned(4096)));
static int spare_used;

bool paging_is_mapped(uint64_t base, uint64_t size) {
  if (size == 0 || base >= kPdptReach || size > kPdptReach - base) return false;
  for (uint64_t gib = base / kGiB; gib <= (base + size - 1) / kGiB; gib++) {
    if (!(boot_pdpt[gib] & 1)) return false;
  }
  return true;
}

bool paging_identity_map(uint64_t base, uint64_t size) {
  if (size == 0 || base >= kPdptReach || size > kPdptReach - base) return false;
  for (uint64_t gib = base / kGiB; gib <= (base + size - 1) / kGiB; gib++) {
    if (boot_pdpt[gib] & 1) continue;
    if (spare_used == kSparePageDirs) return false;
    uint64_t* dir = spare_dirs[spare_used++];
    for (uint64_t i = 0; i < kPageDirEntries; i++) {
      dir[i] = (gib * kGiB + i * kLargePage) | kLargeUncached;
    }
    // A not-present entry is never cached in the TLB, so no flush is needed.
    boot_pdpt[gib] = (uint64_t)(uintptr_t)dir | kPresentRw;
  }
  return true;
}

void paging_set_uncached(uint64_t base, uint64_t size) {
  if (size == 0 || base >= kIdentityMapEnd) return;
  uint64_t end = size > kIdentityMapEnd - base ? kIdentityMapEnd : base + size;
  for (uint64_t page = base / kLargePage; page <= (end - 1) / kLargePage; page++) {
    boot_pd[page] |= kUncachedBits;
  }
  // Reloading CR3 drops every non-global translation, including the cached-type ones.
  uint64_t cr3;
  __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
  __asm__ volatile("mov %0, %%cr3" ::"r"(cr3) : "memory");
}
