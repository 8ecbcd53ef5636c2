// Split virtqueues (virtio 1.2 section 2.7), driven synchronously: a request is a descriptor
// chain that the driver submits and then polls for, with a wall-clock bound. Ring memory comes
// from a page pool whose guest-physical range a scenario can map through a vIOMMU.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtio_pci.h"

// 2.7.5: struct virtq_desc.
struct virtq_desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
} __attribute__((packed));
_Static_assert(sizeof(struct virtq_desc) == 16, "descriptor is 16 bytes (2.7.5)");

enum {
  kVirtqDescNext = 1,
  kVirtqDescWrite = 2,
  kVirtqDescIndirect = 4,
  kVirtqMaxSize = 16,  // the rings of one queue fit in one page
  kVirtqMaxChain = 8,
};

// 2.7.6 and 2.7.8: the driver and device areas, sized for kVirtqMaxSize entries.
struct virtq_avail {
  uint16_t flags;
  uint16_t idx;
  uint16_t ring[kVirtqMaxSize];
  uint16_t used_event;
} __attribute__((packed));

struct virtq_used_elem {
  uint32_t id;
  uint32_t len;
} __attribute__((packed));
_Static_assert(sizeof(struct virtq_used_elem) == 8, "used element is 8 bytes (2.7.8)");

struct virtq_used {
  uint16_t flags;
  uint16_t idx;
  struct virtq_used_elem ring[kVirtqMaxSize];
  uint16_t avail_event;
} __attribute__((packed));

// One buffer of a chain: guest-physical address (translated through the device's hook unless
// `bus` is set) and whether the device writes it.
struct virtq_buf {
  uint64_t addr;
  uint32_t len;
  bool device_writes;
  bool bus;  // addr is already a bus address (an IOVA a scenario chose)
};

struct virtq {
  struct virtio_pci* dev;
  uint16_t index;
  uint16_t size;
  volatile struct virtq_desc* desc;
  volatile struct virtq_avail* avail;
  volatile struct virtq_used* used;
  volatile struct virtq_desc* indirect;  // kVirtqMaxChain entries
  uint64_t notify_addr;
  uint16_t avail_idx;
  uint16_t last_used;
};

// Page pool for rings and request memory: page-aligned, zeroed pages, never freed.
void* dma_alloc_page(void);
// The pool's guest-physical range, for mapping it through an IOMMU.
uint64_t dma_pool_base(void);
uint64_t dma_pool_size(void);

// Sets up queue index with min(device maximum, kVirtqMaxSize) entries and enables it. Ring
// addresses go through the device's bus address hook. false when the queue does not exist or
// the device refused msix_vector.
bool virtq_init(struct virtq* q, struct virtio_pci* dev, uint16_t index, uint16_t msix_vector);

// Places a chain at descriptor head, publishes it and notifies. With `indirect`, the chain goes
// in the indirect table and one descriptor points at it (2.7.5.3). Returns the head.
uint16_t virtq_submit_at(struct virtq* q, uint16_t head, const struct virtq_buf* bufs, int n,
                         bool indirect);
// Submits at descriptor 0: for queues used one request at a time.
uint16_t virtq_submit(struct virtq* q, const struct virtq_buf* bufs, int n);

// Waits up to timeout_ms for the next used element. false on timeout.
bool virtq_wait(struct virtq* q, uint32_t timeout_ms, struct virtq_used_elem* out);
// True when the device has returned an element not yet consumed.
bool virtq_has_used(const struct virtq* q);
