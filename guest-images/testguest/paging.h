// The guest's page tables: entry.S identity-maps 0-4 GiB with 2 MiB pages (3-4 GiB uncached for
// MMIO). Devices whose BARs sit above 4 GiB get more identity-mapped, uncached GiBs on demand.
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define kIdentityMapEnd 0x100000000ull

// Identity-maps [base, base + size) uncached, in whole GiBs, below 512 GiB. Returns false when
// the range is out of reach or the spare page directories are used up.
bool paging_identity_map(uint64_t base, uint64_t size);

// Makes the 2 MiB pages covering [base, base + size) below 4 GiB uncached, for MMIO that
// firmware placed below the uncached top GiB (QEMU q35 puts ECAM at 0xb0000000).
void paging_set_uncached(uint64_t base, uint64_t size);

// True when [base, base + size) is currently mapped.
bool paging_is_mapped(uint64_t base, uint64_t size);
