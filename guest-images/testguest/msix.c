#include "msix.h"

#include "arch.h"
#include "paging.h"

enum { kBirMask = 0x7, kTableSizeMask = 0x7ff };

// The address of offset within BAR bir, or 0 when the BAR is not a mapped memory BAR.
static uint64_t bar_address(pci_bdf_t bdf, uint8_t bir, uint32_t offset, uint64_t span) {
  if (bir >= pci_bar_slots(bdf)) return 0;
  struct pci_bar bar;
  pci_bar_probe(bdf, bir, &bar);
  if (bar.io || bar.base == 0 || bar.size < span || offset > bar.size - span) return 0;
  uint64_t addr = bar.base + offset;
  if (!paging_is_mapped(addr, span) && !paging_identity_map(addr, span)) return 0;
  return addr;
}

bool pci_msix_probe(pci_bdf_t bdf, struct pci_msix* out) {
  uint8_t cap = pci_find_cap(bdf, kPciCapMsix, 0);
  if (!cap) return false;
  uint16_t control = pci_read16(bdf, cap + kMsixControl);
  uint32_t table = pci_read32(bdf, cap + kMsixTable);
  uint32_t pba = pci_read32(bdf, cap + kMsixPba);
  *out = (struct pci_msix){
      .cap = cap,
      .table_size = (uint16_t)((control & kTableSizeMask) + 1),
      .table_bar = (uint8_t)(table & kBirMask),
      .table_offset = table & ~(uint32_t)kBirMask,
      .pba_bar = (uint8_t)(pba & kBirMask),
      .pba_offset = pba & ~(uint32_t)kBirMask,
  };
  out->table_addr = bar_address(bdf, out->table_bar, out->table_offset,
                                (uint64_t)out->table_size * kMsixEntrySize);
  out->pba_addr =
      bar_address(bdf, out->pba_bar, out->pba_offset, ((uint64_t)out->table_size + 63) / 64 * 8);
  return true;
}

static uint64_t entry_addr(const struct pci_msix* m, uint16_t index) {
  return m->table_addr + (uint64_t)index * kMsixEntrySize;
}

void pci_msix_write_entry(const struct pci_msix* m, uint16_t index, const struct msix_entry* e) {
  uint64_t a = entry_addr(m, index);
  // Mask first so the device never sees a half-written address/data pair unmasked.
  mmio_write32(a + 12, mmio_read32(a + 12) | kMsixEntryMasked);
  mmio_write32(a + 0, (uint32_t)e->address);
  mmio_write32(a + 4, (uint32_t)(e->address >> 32));
  mmio_write32(a + 8, e->data);
  mmio_write32(a + 12, e->vector_control);
}

struct msix_entry pci_msix_read_entry(const struct pci_msix* m, uint16_t index) {
  uint64_t a = entry_addr(m, index);
  return (struct msix_entry){
      .address = mmio_read32(a) | ((uint64_t)mmio_read32(a + 4) << 32),
      .data = mmio_read32(a + 8),
      .vector_control = mmio_read32(a + 12),
  };
}

void pci_msix_mask_entry(const struct pci_msix* m, uint16_t index, bool masked) {
  uint64_t a = entry_addr(m, index) + 12;
  uint32_t ctrl = mmio_read32(a);
  mmio_write32(a, masked ? ctrl | kMsixEntryMasked : ctrl & ~(uint32_t)kMsixEntryMasked);
}

bool pci_msix_pending(const struct pci_msix* m, uint16_t index) {
  uint64_t word = mmio_read32(m->pba_addr + (index / 32) * 4);
  return (word >> (index % 32)) & 1;
}

void pci_msix_set_control(pci_bdf_t bdf, const struct pci_msix* m, bool enable, bool mask_all) {
  uint16_t control = pci_read16(bdf, m->cap + kMsixControl);
  control &= ~(kMsixControlEnable | kMsixControlFunctionMask);
  if (enable) control |= kMsixControlEnable;
  if (mask_all) control |= kMsixControlFunctionMask;
  pci_write16(bdf, m->cap + kMsixControl, control);
}
