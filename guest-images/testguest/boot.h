// The PVH start of day information (Xen public/arch-x86/hvm/start_info.h), checked once here
// so scenarios work on validated values.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HVM_START_MAGIC 0x336ec578u

// start_info.h, "struct hvm_start_info"; fields from memmap_paddr on exist from version 1.
struct hvm_start_info {
  uint32_t magic;
  uint32_t version;
  uint32_t flags;
  uint32_t nr_modules;
  uint64_t modlist_paddr;
  uint64_t cmdline_paddr;
  uint64_t rsdp_paddr;
  uint64_t memmap_paddr;
  uint32_t memmap_entries;
  uint32_t reserved;
} __attribute__((packed));
_Static_assert(sizeof(struct hvm_start_info) == 56, "hvm_start_info is 56 bytes");
_Static_assert(offsetof(struct hvm_start_info, cmdline_paddr) == 24, "cmdline_paddr at 24");
_Static_assert(offsetof(struct hvm_start_info, rsdp_paddr) == 32, "rsdp_paddr at 32");
_Static_assert(offsetof(struct hvm_start_info, memmap_paddr) == 40, "memmap_paddr at 40");
_Static_assert(offsetof(struct hvm_start_info, memmap_entries) == 48, "memmap_entries at 48");

// start_info.h, "struct hvm_memmap_table_entry".
struct hvm_memmap_entry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
  uint32_t reserved;
} __attribute__((packed));
_Static_assert(sizeof(struct hvm_memmap_entry) == 24, "hvm_memmap_table_entry is 24 bytes");

enum {
  kMemmapRam = 1,
  kMemmapReserved = 2,
  kMemmapAcpi = 3,
  kMemmapNvs = 4,
  kMemmapUnusable = 5,
  kMemmapMax = 128,  // more entries than any VMM we run under produces
  kCmdlineMax = 4096,
};

struct boot_info {
  uint64_t start_info_paddr;
  uint32_t version;
  const char* cmdline;                    // "" when the VMM passed none
  uint64_t rsdp_paddr;                    // 0 when absent
  const struct hvm_memmap_entry* memmap;  // NULL when version 0
  uint32_t memmap_entries;
};

// Set by entry.S from %ebx.
extern uint64_t boot_start_info_paddr;

// Validates the structure at paddr (magic, every pointer inside the identity map, bounded
// command line and memory map). On failure returns false and sets *error.
bool boot_info_parse(uint64_t paddr, struct boot_info* out, const char** error);

// Finds "key=value" among the space-separated tokens of cmdline and copies the value.
// Returns false when the key is absent or the value does not fit.
bool cmdline_get(const char* cmdline, const char* key, char* value, size_t size);

const char* memmap_type_name(uint32_t type);
