// test=boot: what a VMM hands a PVH guest at entry. Optional ram_mib=<n> checks the RAM total.
#include "arch.h"
#include "check.h"
#include "print.h"
#include "scenario.h"
#include "strutil.h"

extern char __bss_end[];

enum {
  kImageStart = 0x100000,
  kCom1Scratch = 0x3f8 + 7,
  kMiB = 1 << 20,
};

static void print_memmap(const struct boot_info* boot) {
  for (uint32_t i = 0; i < boot->memmap_entries; i++) {
    const struct hvm_memmap_entry* e = &boot->memmap[i];
    printf("memmap %2u: 0x%016lx-0x%016lx %s\n", i, e->addr, e->addr + e->size - 1,
           memmap_type_name(e->type));
  }
}

static bool entries_sane(const struct boot_info* boot) {
  for (uint32_t i = 0; i < boot->memmap_entries; i++) {
    const struct hvm_memmap_entry* a = &boot->memmap[i];
    if (a->size == 0 || a->addr + a->size < a->addr) return false;
  }
  return true;
}

static bool entries_disjoint(const struct boot_info* boot) {
  for (uint32_t i = 0; i < boot->memmap_entries; i++) {
    const struct hvm_memmap_entry* a = &boot->memmap[i];
    for (uint32_t j = i + 1; j < boot->memmap_entries; j++) {
      const struct hvm_memmap_entry* b = &boot->memmap[j];
      if (a->addr < b->addr + b->size && b->addr < a->addr + a->size) return false;
    }
  }
  return true;
}

static bool ram_covers(const struct boot_info* boot, uint64_t start, uint64_t end) {
  for (uint32_t i = 0; i < boot->memmap_entries; i++) {
    const struct hvm_memmap_entry* e = &boot->memmap[i];
    if (e->type == kMemmapRam && e->addr <= start && end <= e->addr + e->size) return true;
  }
  return false;
}

static uint64_t ram_total(const struct boot_info* boot) {
  uint64_t total = 0;
  for (uint32_t i = 0; i < boot->memmap_entries; i++) {
    if (boot->memmap[i].type == kMemmapRam) total += boot->memmap[i].size;
  }
  return total;
}

static void check_memmap(const struct boot_info* boot) {
  if (!check(boot->memmap && boot->memmap_entries > 0, "memory map present")) return;
  print_memmap(boot);
  check(entries_sane(boot), "memory map entries non-empty and not wrapping");
  check(entries_disjoint(boot), "memory map entries do not overlap");
  uint64_t image_end = (uint64_t)(uintptr_t)__bss_end;
  checkf(ram_covers(boot, kImageStart, image_end), "one RAM entry covers the image 0x%x-0x%lx",
         kImageStart, image_end);
  uint64_t total = ram_total(boot);
  printf("RAM total: %lu KiB (%lu MiB)\n", total >> 10, total >> 20);
  uint64_t expect_mib;
  if (cmdline_get_uint(boot->cmdline, "ram_mib", &expect_mib)) {
    // The VMM may keep the legacy hole (640 KiB-1 MiB) and a few firmware pages out of RAM.
    uint64_t expect = expect_mib * kMiB;
    checkf(total <= expect && total + 2 * kMiB >= expect,
           "RAM total within 2 MiB below ram_mib=%lu", expect_mib);
  }
}

void scenario_boot(const struct boot_info* boot) {
  uint64_t si = boot->start_info_paddr;
  uint64_t image_end = (uint64_t)(uintptr_t)__bss_end;
  checkf(si + sizeof(struct hvm_start_info) <= kImageStart || si >= image_end,
         "start_info at 0x%lx outside the image", si);
  checkf(boot->version >= 1, "start_info version %u >= 1 (has a memory map)", boot->version);
  check(strlen(boot->cmdline) > 0, "command line non-empty");
  char value[16];
  check(cmdline_get(boot->cmdline, "test", value, sizeof(value)) && strcmp(value, "boot") == 0,
        "command line key test=boot parsed");
  outb(kCom1Scratch, 0x5a);
  bool scratch_ok = inb(kCom1Scratch) == 0x5a;
  outb(kCom1Scratch, 0xa5);
  check(scratch_ok && inb(kCom1Scratch) == 0xa5, "UART scratch register holds writes");
  check_memmap(boot);
  if (boot->rsdp_paddr) printf("start_info rsdp_paddr: 0x%lx\n", boot->rsdp_paddr);
}
