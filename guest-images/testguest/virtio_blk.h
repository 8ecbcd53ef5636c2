// virtio-blk (virtio 1.2 section 5.2) on top of virtio_pci and virtq: one request queue, one
// request at a time.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtio_pci.h"
#include "virtq.h"

#define VIRTIO_BLK_F_RO (1ull << 5)
#define VIRTIO_BLK_F_BLK_SIZE (1ull << 6)
#define VIRTIO_BLK_F_FLUSH (1ull << 9)
#define VIRTIO_BLK_F_DISCARD (1ull << 13)
#define VIRTIO_BLK_F_WRITE_ZEROES (1ull << 14)

enum {
  kBlkSectorSize = 512,
  kBlkIdBytes = 20,
  // 5.2.6 request types and status values.
  kBlkTypeIn = 0,
  kBlkTypeOut = 1,
  kBlkTypeFlush = 4,
  kBlkTypeGetId = 8,
  kBlkTypeDiscard = 11,
  kBlkTypeWriteZeroes = 13,
  kBlkStatusOk = 0,
  kBlkStatusIoErr = 1,
  kBlkStatusUnsupp = 2,
  // 5.2.4 configuration offsets.
  kBlkCfgCapacity = 0,
  kBlkCfgBlkSize = 20,
  kBlkCfgMaxDiscardSectors = 36,
  kBlkCfgMaxWriteZeroesSectors = 48,
};

// 5.2.6: the device-readable header of every request.
struct virtio_blk_req_header {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
} __attribute__((packed));
_Static_assert(sizeof(struct virtio_blk_req_header) == 16, "request header is 16 bytes (5.2.6)");

// 5.2.6: one discard / write-zeroes segment.
struct virtio_blk_discard_write_zeroes {
  uint64_t sector;
  uint32_t num_sectors;
  uint32_t flags;
} __attribute__((packed));
_Static_assert(sizeof(struct virtio_blk_discard_write_zeroes) == 16, "segment is 16 bytes");

struct virtio_blk {
  struct virtio_pci pci;
  struct virtq q;
  volatile struct virtio_blk_req_header* header;  // request memory in the DMA pool
  volatile uint8_t* status;
  uint64_t capacity;  // 512-byte sectors
};

enum { kBlkNoStatus = 0xff };  // status byte canary: the device never wrote it

// Result of one request: whether it came back in time, the used length and the status byte.
struct blk_result {
  bool completed;
  uint32_t used_len;
  uint8_t status;
  bool needs_reset;  // the device set DEVICE_NEEDS_RESET
};

// Finds the instance-th virtio-blk function; the caller may set pci.bus_addr afterwards.
bool virtio_blk_find(int instance, struct virtio_blk* blk, const char** error);
// Negotiates VERSION_1 (+ extra features when offered) and sets up the request queue on
// msix_vector. Reusable after a reset.
bool virtio_blk_start(struct virtio_blk* blk, uint64_t extra_features, uint16_t msix_vector,
                      const char** error);

// One request: header (type, sector), an optional data buffer (bus address when data_is_bus),
// status byte. Reads and GET_ID have a device-writable data buffer.
struct blk_result virtio_blk_request(struct virtio_blk* blk, uint32_t type, uint64_t sector,
                                     uint64_t data, uint32_t len, bool data_is_bus, bool indirect);

// The known pattern of the test disks (integration/make_test_disk.py): byte i of sector s of a
// disk tagged t is written by blk_pattern.
uint8_t blk_pattern_byte(char tag, uint64_t sector, uint32_t i);
// Number of bytes of buf that differ from sector's pattern.
int blk_pattern_mismatches(const volatile uint8_t* buf, char tag, uint64_t sector);
