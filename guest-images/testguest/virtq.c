#include "virtq.h"

#include "arch.h"
#include "deadline.h"
#include "strutil.h"

enum { kPageSize = 4096, kPoolPages = 24 };

static uint8_t pool[kPoolPages][kPageSize] __attribute__((aligned(kPageSize)));
static int pool_used;

void* dma_alloc_page(void) {
  if (pool_used == kPoolPages) return NULL;
  return pool[pool_used++];  // .bss: already zero
}

uint64_t dma_pool_base(void) { return (uint64_t)(uintptr_t)pool; }
uint64_t dma_pool_size(void) { return sizeof(pool); }

// Page layout of one queue: descriptors at 0 (16-byte aligned), driver area at 256 (2-byte
// aligned), device area at 512 (4-byte aligned), indirect table at 1024 (2.7 alignment rules).
enum { kAvailOffset = 256, kUsedOffset = 512, kIndirectOffset = 1024 };
_Static_assert(kVirtqMaxSize * sizeof(struct virtq_desc) <= kAvailOffset, "descriptors fit");
_Static_assert(kAvailOffset + sizeof(struct virtq_avail) <= kUsedOffset, "driver area fits");
_Static_assert(kUsedOffset + sizeof(struct virtq_used) <= kIndirectOffset, "device area fits");

bool virtq_init(struct virtq* q, struct virtio_pci* dev, uint16_t index, uint16_t msix_vector) {
  uint16_t max = virtio_pci_queue_max(dev, index);
  if (max == 0) return false;
  // A restarted queue keeps its page; the device's ring indexes start over from 0 (2.7).
  uint8_t* page =
      q->dev == dev && q->index == index && q->desc ? (uint8_t*)q->desc : dma_alloc_page();
  if (!page) return false;
  memset(page, 0, kIndirectOffset + kVirtqMaxChain * sizeof(struct virtq_desc));
  *q = (struct virtq){
      .dev = dev,
      .index = index,
      .size = max < kVirtqMaxSize ? max : kVirtqMaxSize,
      .desc = (volatile struct virtq_desc*)page,
      .avail = (volatile struct virtq_avail*)(page + kAvailOffset),
      .used = (volatile struct virtq_used*)(page + kUsedOffset),
      .indirect = (volatile struct virtq_desc*)(page + kIndirectOffset),
  };
  uint64_t gpa = (uint64_t)(uintptr_t)page;
  q->notify_addr =
      virtio_pci_queue_enable(dev, index, q->size, virtio_pci_bus_addr(dev, gpa),
                              virtio_pci_bus_addr(dev, gpa + kAvailOffset),
                              virtio_pci_bus_addr(dev, gpa + kUsedOffset), msix_vector);
  return q->notify_addr != 0;
}

static uint64_t buf_bus_addr(const struct virtq* q, const struct virtq_buf* b) {
  return b->bus ? b->addr : virtio_pci_bus_addr(q->dev, b->addr);
}

// Writes bufs as one chain into table, starting at slot first.
static void write_chain(const struct virtq* q, volatile struct virtq_desc* table, uint16_t first,
                        uint16_t table_size, const struct virtq_buf* bufs, int n) {
  for (int i = 0; i < n; i++) {
    uint16_t slot = (uint16_t)((first + i) % table_size);
    uint16_t next = (uint16_t)((first + i + 1) % table_size);
    table[slot].addr = buf_bus_addr(q, &bufs[i]);
    table[slot].len = bufs[i].len;
    table[slot].flags = (uint16_t)((bufs[i].device_writes ? kVirtqDescWrite : 0) |
                                   (i + 1 < n ? kVirtqDescNext : 0));
    table[slot].next = i + 1 < n ? next : 0;
  }
}

uint16_t virtq_submit_at(struct virtq* q, uint16_t head, const struct virtq_buf* bufs, int n,
                         bool indirect) {
  if (n > kVirtqMaxChain) n = kVirtqMaxChain;
  if (indirect) {
    write_chain(q, q->indirect, 0, kVirtqMaxChain, bufs, n);
    struct virtq_buf table = {(uint64_t)(uintptr_t)q->indirect,
                              (uint32_t)(n * sizeof(struct virtq_desc)), false, false};
    write_chain(q, q->desc, head, q->size, &table, 1);
    q->desc[head].flags = kVirtqDescIndirect;
  } else {
    write_chain(q, q->desc, head, q->size, bufs, n);
  }
  q->avail->ring[q->avail_idx % q->size] = head;
  compiler_barrier();  // x86 keeps stores in order; the compiler must too (2.7.13.3)
  q->avail_idx++;
  q->avail->idx = q->avail_idx;
  compiler_barrier();
  mmio_write16(q->notify_addr, q->index);
  return head;
}

uint16_t virtq_submit(struct virtq* q, const struct virtq_buf* bufs, int n) {
  return virtq_submit_at(q, 0, bufs, n, false);
}

bool virtq_has_used(const struct virtq* q) { return q->used->idx != q->last_used; }

bool virtq_wait(struct virtq* q, uint32_t timeout_ms, struct virtq_used_elem* out) {
  struct deadline d = deadline_after_ms(timeout_ms);
  while (!virtq_has_used(q)) {
    if (deadline_expired(&d)) return false;
    cpu_relax();
  }
  compiler_barrier();
  volatile struct virtq_used_elem* e = &q->used->ring[q->last_used % q->size];
  out->id = e->id;
  out->len = e->len;
  q->last_used++;
  return true;
}
