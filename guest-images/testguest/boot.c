#include "boot.h"

#include "paging.h"
#include "strutil.h"

static bool fits_identity_map(uint64_t paddr, uint64_t size) {
  return paddr != 0 && size <= kIdentityMapEnd && paddr <= kIdentityMapEnd - size;
}

bool boot_info_parse(uint64_t paddr, struct boot_info* out, const char** error) {
  *out = (struct boot_info){.start_info_paddr = paddr, .cmdline = ""};
  if (!fits_identity_map(paddr, sizeof(struct hvm_start_info))) {
    *error = "start_info address outside the identity map";
    return false;
  }
  const struct hvm_start_info* si = (const struct hvm_start_info*)paddr;
  if (si->magic != HVM_START_MAGIC) {
    *error = "start_info magic is not 0x336ec578";
    return false;
  }
  out->version = si->version;
  out->rsdp_paddr = si->rsdp_paddr;
  if (si->cmdline_paddr) {
    if (!fits_identity_map(si->cmdline_paddr, kCmdlineMax)) {
      *error = "command line outside the identity map";
      return false;
    }
    const char* cmdline = (const char*)si->cmdline_paddr;
    if (str_nlen(cmdline, kCmdlineMax) == kCmdlineMax) {
      *error = "command line not terminated within 4096 bytes";
      return false;
    }
    out->cmdline = cmdline;
  }
  if (si->version >= 1 && si->memmap_paddr) {
    if (si->memmap_entries > kMemmapMax ||
        !fits_identity_map(si->memmap_paddr,
                           (uint64_t)si->memmap_entries * sizeof(struct hvm_memmap_entry))) {
      *error = "memory map too large or outside the identity map";
      return false;
    }
    out->memmap = (const struct hvm_memmap_entry*)si->memmap_paddr;
    out->memmap_entries = si->memmap_entries;
  }
  return true;
}

bool cmdline_get(const char* cmdline, const char* key, char* value, size_t size) {
  size_t key_len = strlen(key);
  const char* p = cmdline;
  while (*p) {
    while (*p == ' ') p++;
    const char* token = p;
    while (*p && *p != ' ') p++;
    size_t token_len = (size_t)(p - token);
    if (token_len > key_len && token[key_len] == '=' && memcmp(token, key, key_len) == 0) {
      size_t value_len = token_len - key_len - 1;
      if (value_len + 1 > size) return false;
      memcpy(value, token + key_len + 1, value_len);
      value[value_len] = '\0';
      return true;
    }
  }
  return false;
}

const char* memmap_type_name(uint32_t type) {
  switch (type) {
    case kMemmapRam:
      return "ram";
    case kMemmapReserved:
      return "reserved";
    case kMemmapAcpi:
      return "acpi";
    case kMemmapNvs:
      return "nvs";
    case kMemmapUnusable:
      return "unusable";
    default:
      return "other";
  }
}
