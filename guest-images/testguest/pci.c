#include "pci.h"

#include "arch.h"
#include "paging.h"

enum {
  kPortAddress = 0xcf8,
  kPortData = 0xcfc,
  kPortEnable = 0x80000000,
  kMaxCaps = 48,  // (256 - 64) / 4: more would mean a loop in the list
  kHeaderTypeNormal = 0,
  kHeaderTypeBridge = 1,
  kBarIo = 0x1,
  kBarMemTypeMask = 0x6,
  kBarMem64 = 0x4,
  kBarPrefetchable = 0x8,
};

static struct ecam_region ecam;
static bool ecam_known;

void pci_set_ecam(const struct ecam_region* region) {
  ecam = *region;
  uint64_t first = region->base + ((uint64_t)region->start_bus << 20);
  uint64_t size = (uint64_t)(region->end_bus - region->start_bus + 1) << 20;
  ecam_known = paging_is_mapped(first, size);
  if (ecam_known) paging_set_uncached(first, size);
}

bool pci_has_ecam(void) { return ecam_known; }

static uint32_t all_ones(int width) { return width == 4 ? 0xffffffffu : (1u << (width * 8)) - 1; }

static bool ecam_address(pci_bdf_t bdf, uint16_t off, uint64_t* addr) {
  uint8_t bus = PCI_BUS(bdf);
  if (!ecam_known || bus < ecam.start_bus || bus > ecam.end_bus || off >= kPcieConfigSize) {
    return false;
  }
  *addr = ecam.base + ((uint64_t)bdf << 12) + off;
  return true;
}

static bool port_select(pci_bdf_t bdf, uint16_t off) {
  if (off >= kPciConfigSize) return false;
  outl(kPortAddress, kPortEnable | ((uint32_t)bdf << 8) | (off & 0xfc));
  return true;
}

uint32_t pci_read(enum pci_access how, pci_bdf_t bdf, uint16_t off, int width) {
  if (how == PCI_ACCESS_ECAM) {
    uint64_t a;
    if (!ecam_address(bdf, off, &a)) return all_ones(width);
    if (width == 1) return mmio_read8(a);
    if (width == 2) return mmio_read16(a);
    return mmio_read32(a);
  }
  if (!port_select(bdf, off)) return all_ones(width);
  uint16_t port = kPortData + (off & 3);
  if (width == 1) return inb(port);
  if (width == 2) return inw(port);
  return inl(port);
}

void pci_write(enum pci_access how, pci_bdf_t bdf, uint16_t off, int width, uint32_t value) {
  if (how == PCI_ACCESS_ECAM) {
    uint64_t a;
    if (!ecam_address(bdf, off, &a)) return;
    if (width == 1)
      mmio_write8(a, (uint8_t)value);
    else if (width == 2)
      mmio_write16(a, (uint16_t)value);
    else
      mmio_write32(a, value);
    return;
  }
  if (!port_select(bdf, off)) return;
  uint16_t port = kPortData + (off & 3);
  if (width == 1)
    outb(port, (uint8_t)value);
  else if (width == 2)
    outw(port, (uint16_t)value);
  else
    outl(port, value);
}

static enum pci_access preferred(void) { return ecam_known ? PCI_ACCESS_ECAM : PCI_ACCESS_PORT; }

uint8_t pci_read8(pci_bdf_t bdf, uint16_t off) {
  return (uint8_t)pci_read(preferred(), bdf, off, 1);
}
uint16_t pci_read16(pci_bdf_t bdf, uint16_t off) {
  return (uint16_t)pci_read(preferred(), bdf, off, 2);
}
uint32_t pci_read32(pci_bdf_t bdf, uint16_t off) { return pci_read(preferred(), bdf, off, 4); }
void pci_write8(pci_bdf_t bdf, uint16_t off, uint8_t v) { pci_write(preferred(), bdf, off, 1, v); }
void pci_write16(pci_bdf_t bdf, uint16_t off, uint16_t v) {
  pci_write(preferred(), bdf, off, 2, v);
}
void pci_write32(pci_bdf_t bdf, uint16_t off, uint32_t v) {
  pci_write(preferred(), bdf, off, 4, v);
}

static bool read_function(enum pci_access how, pci_bdf_t bdf, struct pci_function* f) {
  uint32_t id = pci_read(how, bdf, kPciVendorId, 4);
  if ((id & 0xffff) == 0xffff || (id & 0xffff) == 0) return false;
  uint32_t class_rev = pci_read(how, bdf, kPciRevision, 4);
  *f = (struct pci_function){
      .bdf = bdf,
      .vendor = (uint16_t)id,
      .device = (uint16_t)(id >> 16),
      .class_code = class_rev >> 8,
      .revision = (uint8_t)class_rev,
      .header_type = (uint8_t)(pci_read(how, bdf, kPciHeaderType, 1) & 0x7f),
  };
  return true;
}

struct bus_queue {
  uint8_t buses[kPciMaxBuses];
  int head, tail;
  uint32_t seen[8];  // one bit per bus number
};

static void queue_bus(struct bus_queue* q, uint8_t bus) {
  if (q->seen[bus / 32] & (1u << (bus % 32)) || q->tail == kPciMaxBuses) return;
  q->seen[bus / 32] |= 1u << (bus % 32);
  q->buses[q->tail++] = bus;
}

int pci_enumerate(enum pci_access how, struct pci_function* out, int max) {
  struct bus_queue q = {0};
  int n = 0;
  queue_bus(&q, 0);
  while (q.head < q.tail) {
    uint8_t bus = q.buses[q.head++];
    for (int dev = 0; dev < 32; dev++) {
      for (int fn = 0; fn < 8; fn++) {
        struct pci_function f;
        if (!read_function(how, PCI_BDF(bus, dev, fn), &f)) {
          if (fn == 0) break;
          continue;
        }
        if (n < max) out[n++] = f;
        if (f.header_type == kHeaderTypeBridge) {
          uint8_t secondary = (uint8_t)pci_read(how, f.bdf, kPciSecondaryBus, 1);
          if (secondary > bus) queue_bus(&q, secondary);
        }
        bool multi = pci_read(how, f.bdf, kPciHeaderType, 1) & kPciHeaderMultiFunction;
        if (fn == 0 && !multi) break;
      }
    }
  }
  return n;
}

bool pci_find_device(uint16_t vendor, uint16_t device, int instance, struct pci_function* out) {
  static struct pci_function found[kPciMaxFunctions];
  int n = pci_enumerate(preferred(), found, kPciMaxFunctions);
  for (int i = 0; i < n; i++) {
    if (found[i].vendor == vendor && found[i].device == device && instance-- == 0) {
      *out = found[i];
      return true;
    }
  }
  return false;
}

int pci_bar_slots(pci_bdf_t bdf) {
  switch (pci_read8(bdf, kPciHeaderType) & 0x7f) {
    case kHeaderTypeNormal:
      return 6;
    case kHeaderTypeBridge:
      return 2;
    default:
      return 0;
  }
}

static uint32_t size_register(pci_bdf_t bdf, uint16_t off, uint32_t* original) {
  *original = pci_read32(bdf, off);
  pci_write32(bdf, off, 0xffffffff);
  uint32_t mask = pci_read32(bdf, off);
  pci_write32(bdf, off, *original);
  return mask;
}

int pci_bar_probe(pci_bdf_t bdf, int index, struct pci_bar* bar) {
  uint16_t off = kPciBar0 + 4 * index;
  uint16_t command = pci_read16(bdf, kPciCommand);
  // An all-ones BAR decodes at the top of the address space; keep it from claiming accesses.
  pci_write16(bdf, kPciCommand, command & ~(kPciCommandIo | kPciCommandMemory));
  uint32_t lo;
  uint32_t mask = size_register(bdf, off, &lo);
  *bar = (struct pci_bar){.io = lo & kBarIo};
  int slots = 1;
  if (bar->io) {
    uint32_t m = mask & ~3u;
    if (m && !(m & 0xffff0000)) m |= 0xffff0000;  // 16-bit I/O decoders hardwire the top half
    bar->base = lo & ~3u;
    bar->size = m ? (uint32_t)(~m + 1) : 0;
  } else {
    uint64_t m = mask & ~0xfu;
    bar->base = lo & ~0xfu;
    bar->prefetchable = lo & kBarPrefetchable;
    bar->mem64 = (lo & kBarMemTypeMask) == kBarMem64;
    if (bar->mem64 && index + 1 < pci_bar_slots(bdf)) {
      uint32_t hi;
      uint32_t mask_hi = size_register(bdf, off + 4, &hi);
      bar->base |= (uint64_t)hi << 32;
      m |= (uint64_t)mask_hi << 32;
      slots = 2;
    } else {
      m |= 0xffffffff00000000ull;
    }
    bar->size = mask ? ~m + 1 : 0;
  }
  pci_write16(bdf, kPciCommand, command);
  return slots;
}

uint8_t pci_next_cap(pci_bdf_t bdf, uint8_t cap) {
  if (cap == 0) {
    if (!(pci_read16(bdf, kPciStatus) & kPciStatusCapList)) return 0;
    return pci_read8(bdf, kPciCapPointer) & 0xfc;
  }
  return pci_read8(bdf, cap + 1) & 0xfc;
}

uint8_t pci_find_cap(pci_bdf_t bdf, uint8_t id, uint8_t after) {
  uint8_t cap = pci_next_cap(bdf, after);
  for (int i = 0; cap >= 0x40 && i < kMaxCaps; i++) {
    if (pci_read8(bdf, cap) == id) return cap;
    cap = pci_next_cap(bdf, cap);
  }
  return 0;
}

void pci_set_command(pci_bdf_t bdf, uint16_t set, uint16_t clear) {
  uint16_t cmd = pci_read16(bdf, kPciCommand);
  pci_write16(bdf, kPciCommand, (uint16_t)((cmd & ~clear) | set));
}

const char* pci_class_name(uint32_t class_code) {
  switch (class_code >> 16) {
    case 0x01:
      return "storage";
    case 0x02:
      return "network";
    case 0x03:
      return "display";
    case 0x06:
      return "bridge";
    case 0x08:
      return "system";
    case 0x0c:
      return "serial-bus";
    case 0x00:
      return "unclassified";
    default:
      return "other";
  }
}
