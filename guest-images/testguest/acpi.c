#include "acpi.h"

#include "paging.h"
#include "strutil.h"

enum {
  kBiosAreaStart = 0xe0000,
  kBiosAreaEnd = 0x100000,
  kRsdpV1Length = 20,
  kMaxTableLength = 1 << 20,  // no table we look at comes near this
  kMaxTables = 64,
};

static uint8_t sum_bytes(const void* p, size_t n) {
  const uint8_t* b = p;
  uint8_t sum = 0;
  for (size_t i = 0; i < n; i++) sum += b[i];
  return sum;
}

static bool rsdp_valid(uint64_t paddr) {
  const struct acpi_rsdp* r = (const struct acpi_rsdp*)paddr;
  if (memcmp(r->signature, "RSD PTR ", 8) != 0) return false;
  if (sum_bytes(r, kRsdpV1Length) != 0) return false;
  return r->revision < 2 || sum_bytes(r, sizeof(*r)) == 0;
}

uint64_t acpi_find_rsdp(const struct boot_info* boot, const char** source) {
  if (boot->rsdp_paddr && paging_is_mapped(boot->rsdp_paddr, sizeof(struct acpi_rsdp))) {
    *source = "start_info";
    return rsdp_valid(boot->rsdp_paddr) ? boot->rsdp_paddr : 0;
  }
  *source = "scan";
  for (uint64_t p = kBiosAreaStart; p < kBiosAreaEnd; p += 16) {
    if (rsdp_valid(p)) return p;
  }
  return 0;
}

// Returns the table at paddr when it is mapped, sane in length and checksums to zero.
static const struct acpi_header* table_at(uint64_t paddr) {
  if (paddr == 0 || !paging_is_mapped(paddr, sizeof(struct acpi_header))) return NULL;
  const struct acpi_header* h = (const struct acpi_header*)paddr;
  if (h->length < sizeof(*h) || h->length > kMaxTableLength) return NULL;
  if (!paging_is_mapped(paddr, h->length) || sum_bytes(h, h->length) != 0) return NULL;
  return h;
}

const struct acpi_header* acpi_find_table(uint64_t rsdp_paddr, const char* signature) {
  const struct acpi_rsdp* r = (const struct acpi_rsdp*)rsdp_paddr;
  bool use_xsdt = r->revision >= 2 && r->xsdt_address;
  const struct acpi_header* root = table_at(use_xsdt ? r->xsdt_address : r->rsdt_address);
  if (!root) return NULL;
  size_t entry_size = use_xsdt ? 8 : 4;
  size_t count = (root->length - sizeof(*root)) / entry_size;
  if (count > kMaxTables) count = kMaxTables;
  const uint8_t* entries = (const uint8_t*)root + sizeof(*root);
  for (size_t i = 0; i < count; i++) {
    uint64_t addr = 0;
    memcpy(&addr, entries + i * entry_size, entry_size);  // XSDT entries are unaligned
    const struct acpi_header* t = table_at(addr);
    if (t && memcmp(t->signature, signature, 4) == 0) return t;
  }
  return NULL;
}

bool acpi_mcfg_ecam(const struct acpi_header* mcfg, struct ecam_region* out) {
  if (mcfg->length < ACPI_MCFG_ALLOCATIONS_OFFSET) return false;
  size_t count =
      (mcfg->length - ACPI_MCFG_ALLOCATIONS_OFFSET) / sizeof(struct acpi_mcfg_allocation);
  const uint8_t* first = (const uint8_t*)mcfg + ACPI_MCFG_ALLOCATIONS_OFFSET;
  for (size_t i = 0; i < count; i++) {
    struct acpi_mcfg_allocation a;
    memcpy(&a, first + i * sizeof(a), sizeof(a));
    if (a.segment != 0 || a.end_bus < a.start_bus) continue;
    *out = (struct ecam_region){a.base_address, a.start_bus, a.end_bus};
    return true;
  }
  return false;
}
