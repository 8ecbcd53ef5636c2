#include "virtio_blk.h"

#include "deadline.h"

enum { kTimeoutMs = 5000, kStatusOffset = 64 };

bool virtio_blk_find(int instance, struct virtio_blk* blk, const char** error) {
  *blk = (struct virtio_blk){0};
  return virtio_pci_open(kVirtioTypeBlock, instance, &blk->pci, error);
}

bool virtio_blk_start(struct virtio_blk* blk, uint64_t extra_features, uint16_t msix_vector,
                      const char** error) {
  uint64_t required = VIRTIO_F_VERSION_1;
  if (blk->pci.bus_addr) required |= VIRTIO_F_ACCESS_PLATFORM;
  // A device behind an IOMMU offers ACCESS_PLATFORM and a driver that may refuse it is not
  // told so; negotiate it whenever it is offered (6.1).
  uint64_t wanted = extra_features | VIRTIO_F_ACCESS_PLATFORM;
  if (!virtio_pci_negotiate(&blk->pci, wanted, required, error)) return false;
  blk->capacity = virtio_pci_cfg64(&blk->pci, kBlkCfgCapacity);
  if (!blk->header) {
    uint8_t* page = dma_alloc_page();
    if (!page) {
      *error = "DMA pool exhausted";
      return false;
    }
    blk->header = (volatile struct virtio_blk_req_header*)page;
    blk->status = page + kStatusOffset;
  }
  if (!virtq_init(&blk->q, &blk->pci, 0, msix_vector)) {
    *error = "request queue setup failed";
    return false;
  }
  virtio_pci_set_status(&blk->pci, kVirtioStatusAcknowledge | kVirtioStatusDriver |
                                       kVirtioStatusFeaturesOk | kVirtioStatusDriverOk);
  return true;
}

struct blk_result virtio_blk_request(struct virtio_blk* blk, uint32_t type, uint64_t sector,
                                     uint64_t data, uint32_t len, bool data_is_bus, bool indirect) {
  blk->header->type = type;
  blk->header->reserved = 0;
  blk->header->sector = sector;
  *blk->status = kBlkNoStatus;
  bool device_writes = type == kBlkTypeIn || type == kBlkTypeGetId;
  struct virtq_buf bufs[3];
  int n = 0;
  bufs[n++] =
      (struct virtq_buf){(uint64_t)(uintptr_t)blk->header, sizeof(*blk->header), false, false};
  if (len) bufs[n++] = (struct virtq_buf){data, len, device_writes, data_is_bus};
  bufs[n++] = (struct virtq_buf){(uint64_t)(uintptr_t)blk->status, 1, true, false};
  virtq_submit_at(&blk->q, 0, bufs, n, indirect);
  struct blk_result r = {0};
  // A device that gave up on the chain (NEEDS_RESET) will never return it: stop waiting.
  struct deadline d = deadline_after_ms(kTimeoutMs);
  while (!virtq_has_used(&blk->q) && !deadline_expired(&d)) {
    if (virtio_pci_status(&blk->pci) & kVirtioStatusNeedsReset) break;
  }
  struct virtq_used_elem e;
  r.completed = virtq_has_used(&blk->q) && virtq_wait(&blk->q, 0, &e);
  r.used_len = r.completed ? e.len : 0;
  r.status = *blk->status;
  r.needs_reset = (virtio_pci_status(&blk->pci) & kVirtioStatusNeedsReset) != 0;
  return r;
}

uint8_t blk_pattern_byte(char tag, uint64_t sector, uint32_t i) {
  if (i < 8) return (uint8_t)(sector >> (8 * i));
  if (i == 8) return (uint8_t)tag;
  return (uint8_t)(sector * 7 + i + (uint8_t)tag);
}

int blk_pattern_mismatches(const volatile uint8_t* buf, char tag, uint64_t sector) {
  int bad = 0;
  for (uint32_t i = 0; i < kBlkSectorSize; i++) bad += buf[i] != blk_pattern_byte(tag, sector, i);
  return bad;
}
