// test=virtio-blk: two disks made by integration/make_test_disk.py (tag 'a' read-write, tag 'b'
// read-only). Capacity and block size from config; read and check the pattern (also through an
// indirect descriptor); write, read back, flush; GET_ID against disk_id=<id>; a read past the
// capacity gets IOERR; the read-only disk refuses a write; write-zeroes and discard when
// offered. Completions are taken as MSI-X interrupts. Optional disk_sectors=<n> fixes capacity.
#include "arch.h"
#include "check.h"
#include "idt.h"
#include "lapic.h"
#include "msix.h"
#include "print.h"
#include "scenario.h"
#include "strutil.h"
#include "virtio_blk.h"

enum {
  kVectorBlk = 0x51,
  kVectorSpurious = 0xff,
  kWriteSector = 5,
  kZeroSector = 9,
  kMsiWaitPolls = 100000,
};

static volatile int blk_interrupts;
static INTERRUPT_HANDLER(blk_handler) {
  blk_interrupts++;
  lapic_eoi();
}

static uint8_t* data;  // two sectors in the DMA pool

// Routes MSI-X entry 0 to kVectorBlk; the queue is set up on vector 0 afterwards.
static bool setup_msix(struct virtio_blk* blk) {
  struct pci_msix m;
  if (!pci_msix_probe(blk->pci.fn.bdf, &m) || !m.table_addr) return false;
  struct msix_entry e = {msi_address(lapic_id()), msi_data(kVectorBlk), 0};
  pci_msix_write_entry(&m, 0, &e);
  pci_msix_set_control(blk->pci.fn.bdf, &m, true, false);
  return true;
}

// Takes the interrupt that must follow a completion: polls the IRR with interrupts off, then
// lets it in. Halting only when it is pending keeps the wait bounded.
static bool take_completion_interrupt(void) {
  int before = blk_interrupts;
  for (int i = 0; i < kMsiWaitPolls && !lapic_irr(kVectorBlk); i++) cpu_relax();
  if (lapic_irr(kVectorBlk)) irq_enable_and_halt();
  return blk_interrupts == before + 1;
}

static struct blk_result read_sectors(struct virtio_blk* blk, uint64_t sector, uint32_t count,
                                      bool indirect) {
  memset(data, 0x5a, count * kBlkSectorSize);
  return virtio_blk_request(blk, kBlkTypeIn, sector, (uint64_t)(uintptr_t)data,
                            count * kBlkSectorSize, false, indirect);
}

static void check_reads(struct virtio_blk* a, const struct boot_info* boot) {
  uint64_t want = 0;
  if (cmdline_get_uint(boot->cmdline, "disk_sectors", &want)) {
    checkf(a->capacity == want, "capacity %lu sectors (want %lu)", a->capacity, want);
  }
  if (a->pci.negotiated & VIRTIO_BLK_F_BLK_SIZE) {
    uint32_t bs = virtio_pci_cfg32(&a->pci, kBlkCfgBlkSize);
    checkf(bs >= 512 && (bs & (bs - 1)) == 0, "block size %u is a power of two >= 512", bs);
  }
  struct blk_result r = read_sectors(a, 3, 2, false);
  check(r.completed && r.status == kBlkStatusOk, "read of sectors 3-4 completes with S_OK");
  check(take_completion_interrupt(), "completion raised the queue's MSI-X interrupt");
  check(blk_pattern_mismatches(data, 'a', 3) == 0 &&
            blk_pattern_mismatches(data + kBlkSectorSize, 'a', 4) == 0,
        "sectors 3-4 hold the disk's pattern");
  checkf(r.used_len >= 2 * kBlkSectorSize + 1, "used length %u covers data and status", r.used_len);
  if (a->pci.negotiated & VIRTIO_F_INDIRECT_DESC) {
    r = read_sectors(a, 7, 1, true);
    take_completion_interrupt();
    check(r.completed && r.status == kBlkStatusOk && blk_pattern_mismatches(data, 'a', 7) == 0,
          "read through an indirect descriptor table");
  }
  r = read_sectors(a, a->capacity, 1, false);
  take_completion_interrupt();
  checkf(r.completed && r.status == kBlkStatusIoErr, "read at the capacity gets IOERR (%u)",
         r.status);
  r = read_sectors(a, a->capacity - 1, 2, false);
  take_completion_interrupt();
  checkf(r.completed && r.status == kBlkStatusIoErr, "read straddling the capacity gets IOERR (%u)",
         r.status);
}

static void check_writes(struct virtio_blk* a) {
  for (uint32_t i = 0; i < kBlkSectorSize; i++) data[i] = (uint8_t)(0xc3 ^ i);
  struct blk_result r = virtio_blk_request(a, kBlkTypeOut, kWriteSector, (uint64_t)(uintptr_t)data,
                                           kBlkSectorSize, false, false);
  take_completion_interrupt();
  check(r.completed && r.status == kBlkStatusOk, "write of sector 5 completes with S_OK");
  r = read_sectors(a, kWriteSector, 1, false);
  take_completion_interrupt();
  bool same = r.status == kBlkStatusOk;
  for (uint32_t i = 0; i < kBlkSectorSize; i++) same &= data[i] == (uint8_t)(0xc3 ^ i);
  check(same, "sector 5 reads back what was written");
  if (a->pci.negotiated & VIRTIO_BLK_F_FLUSH) {
    r = virtio_blk_request(a, kBlkTypeFlush, 0, 0, 0, false, false);
    take_completion_interrupt();
    check(r.completed && r.status == kBlkStatusOk, "flush completes with S_OK");
  }
}

// Write-zeroes and discard take one segment (5.2.6).
static void check_zeroes_and_discard(struct virtio_blk* a) {
  struct virtio_blk_discard_write_zeroes* seg = (void*)(data + 2 * kBlkSectorSize);
  if (a->pci.negotiated & VIRTIO_BLK_F_WRITE_ZEROES) {
    *seg = (struct virtio_blk_discard_write_zeroes){kZeroSector, 1, 0};
    struct blk_result r = virtio_blk_request(a, kBlkTypeWriteZeroes, 0, (uint64_t)(uintptr_t)seg,
                                             sizeof(*seg), false, false);
    take_completion_interrupt();
    check(r.completed && r.status == kBlkStatusOk, "write-zeroes completes with S_OK");
    r = read_sectors(a, kZeroSector, 1, false);
    take_completion_interrupt();
    bool zero = r.status == kBlkStatusOk;
    for (uint32_t i = 0; i < kBlkSectorSize; i++) zero &= data[i] == 0;
    check(zero, "the zeroed sector reads back as zeroes");
  } else {
    note("write-zeroes not offered");
  }
  if (a->pci.negotiated & VIRTIO_BLK_F_DISCARD) {
    *seg = (struct virtio_blk_discard_write_zeroes){kZeroSector + 1, 1, 0};
    struct blk_result r = virtio_blk_request(a, kBlkTypeDiscard, 0, (uint64_t)(uintptr_t)seg,
                                             sizeof(*seg), false, false);
    take_completion_interrupt();
    check(r.completed && r.status == kBlkStatusOk, "discard completes with S_OK");
  } else {
    note("discard not offered");
  }
}

static void check_get_id(struct virtio_blk* a, const struct boot_info* boot) {
  char want[kBlkIdBytes + 1] = {0};
  memset(data, 0, kBlkIdBytes);
  struct blk_result r =
      virtio_blk_request(a, kBlkTypeGetId, 0, (uint64_t)(uintptr_t)data, kBlkIdBytes, false, false);
  take_completion_interrupt();
  char got[kBlkIdBytes + 1] = {0};
  memcpy(got, data, kBlkIdBytes);
  printf("disk id \"%s\"\n", got);
  if (cmdline_get(boot->cmdline, "disk_id", want, sizeof(want))) {
    checkf(r.completed && r.status == kBlkStatusOk && strcmp(got, want) == 0,
           "GET_ID returns \"%s\"", want);
  } else {
    check(r.completed && r.status == kBlkStatusOk, "GET_ID completes with S_OK");
  }
}

static void check_read_only(void) {
  struct virtio_blk b;
  const char* error = "";
  if (!check(virtio_blk_find(1, &b, &error) &&
                 virtio_blk_start(&b, VIRTIO_BLK_F_RO, VIRTIO_MSI_NO_VECTOR, &error),
             "second (read-only) disk started")) {
    printf("virtio-blk 1: %s\n", error);
    return;
  }
  check(b.pci.negotiated & VIRTIO_BLK_F_RO, "read-only disk offers VIRTIO_BLK_F_RO");
  memset(data, 0x77, kBlkSectorSize);
  struct blk_result r = virtio_blk_request(&b, kBlkTypeOut, 2, (uint64_t)(uintptr_t)data,
                                           kBlkSectorSize, false, false);
  checkf(r.completed && r.status == kBlkStatusIoErr, "write to the read-only disk gets IOERR (%u)",
         r.status);
  r = read_sectors(&b, 2, 1, false);
  check(r.status == kBlkStatusOk && blk_pattern_mismatches(data, 'b', 2) == 0,
        "the refused write left the read-only disk unchanged");
}

void scenario_virtio_blk(const struct boot_info* boot) {
  irq_disable();
  legacy_pic_mask_all();
  idt_set_handler(kVectorBlk, blk_handler);
  const char* error = "";
  if (!check(lapic_enable(kVectorSpurious, &error), "LAPIC enabled")) return;
  struct virtio_blk a;
  data = dma_alloc_page();
  if (!check(virtio_blk_find(0, &a, &error), "virtio-blk 0 found")) {
    printf("virtio-blk 0: %s\n", error);
    return;
  }
  check(setup_msix(&a), "MSI-X entry 0 routed to the LAPIC");
  uint64_t features = VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_DISCARD |
                      VIRTIO_BLK_F_WRITE_ZEROES | VIRTIO_F_INDIRECT_DESC;
  if (!check(virtio_blk_start(&a, features, 0, &error), "virtio-blk 0 started on MSI-X vector 0")) {
    printf("virtio-blk 0: %s\n", error);
    return;
  }
  printf("virtio-blk 0 at %02x:%02x.%x: capacity %lu sectors, features offered 0x%lx\n",
         PCI_BUS(a.pci.fn.bdf), PCI_DEV(a.pci.fn.bdf), PCI_FN(a.pci.fn.bdf), a.capacity,
         a.pci.offered);
  check_reads(&a, boot);
  check_writes(&a);
  check_zeroes_and_discard(&a);
  check_get_id(&a, boot);
  check_read_only();
  checkf(idt_unexpected_interrupts() == 0, "no unexpected interrupts (%d)",
         idt_unexpected_interrupts());
}
