#include "dma_engine.h"

#include "arch.h"
#include "deadline.h"
#include "lapic.h"
#include "paging.h"

bool dma_engine_open(int instance, struct dma_engine* e, const char** error) {
  *e = (struct dma_engine){0};
  if (!pci_find_device(kDmaEngineVendor, kDmaEngineDevice, instance, &e->fn)) {
    *error = "no such DMA engine function";
    return false;
  }
  struct pci_bar bar;
  pci_bar_probe(e->fn.bdf, 0, &bar);
  if (bar.io || bar.size < kDmaEngineBar0Size) {
    *error = "BAR0 is not a memory BAR of at least 8 KiB";
    return false;
  }
  if (bar.base == 0) {
    *error = "BAR0 is unassigned";
    return false;
  }
  if (!paging_is_mapped(bar.base, bar.size) && !paging_identity_map(bar.base, bar.size)) {
    *error = "BAR0 cannot be mapped";
    return false;
  }
  e->bar0 = bar.base;
  pci_set_command(e->fn.bdf, kPciCommandMemory | kPciCommandBusMaster, kPciCommandIo);
  return true;
}

// 64-bit registers are written as two dwords, low first: the engine latches each half.
static void write64(const struct dma_engine* e, uint32_t reg, uint64_t value) {
  mmio_write32(e->bar0 + reg, (uint32_t)value);
  mmio_write32(e->bar0 + reg + 4, (uint32_t)(value >> 32));
}

uint64_t dma_engine_read64(const struct dma_engine* e, uint32_t reg) {
  uint64_t lo = mmio_read32(e->bar0 + reg);
  return lo | (uint64_t)mmio_read32(e->bar0 + reg + 4) << 32;
}

void dma_engine_start(const struct dma_engine* e, uint64_t src, uint64_t dst, uint32_t length) {
  // The device reads guest memory behind the compiler's back: buffer stores must be done first.
  compiler_barrier();
  write64(e, kDmaRegSrc, src);
  write64(e, kDmaRegDst, dst);
  mmio_write32(e->bar0 + kDmaRegLength, length);
  mmio_write32(e->bar0 + kDmaRegDoorbell, 1);
}

uint32_t dma_engine_status(const struct dma_engine* e) {
  return mmio_read32(e->bar0 + kDmaRegStatus);
}

uint64_t dma_engine_completions(const struct dma_engine* e) {
  return dma_engine_read64(e, kDmaRegCompletions);
}

struct dma_result dma_engine_wait(const struct dma_engine* e, uint32_t timeout_ms) {
  struct deadline d = deadline_after_ms(timeout_ms);
  struct dma_result r = {0};
  uint32_t status;
  for (;;) {
    status = dma_engine_status(e);
    if ((status & 0xff) != kDmaStateBusy) {
      r.finished = true;
      break;
    }
    if (deadline_expired(&d)) break;
    cpu_relax();
  }
  compiler_barrier();  // and buffer loads must come after the device finished
  r.state = (uint8_t)status;
  r.error = (uint8_t)(status >> 8);
  r.completions = dma_engine_completions(e);
  return r;
}

struct dma_result dma_engine_copy(const struct dma_engine* e, uint64_t src, uint64_t dst,
                                  uint32_t length) {
  dma_engine_start(e, src, dst, length);
  return dma_engine_wait(e, kDmaCopyTimeoutMs);
}

bool dma_ok(struct dma_result r) {
  return r.finished && r.state == kDmaStateDone && r.error == kDmaErrNone;
}

bool dma_failed_with(struct dma_result r, uint8_t error) {
  return r.finished && r.state == kDmaStateError && r.error == error;
}

const char* dma_error_name(uint8_t error) {
  static const char* const kNames[] = {"none",       "src-unmapped", "dst-unmapped", "dst-readonly",
                                       "bad-length", "busy",         "peer"};
  return error < sizeof(kNames) / sizeof(kNames[0]) ? kNames[error] : "(unknown)";
}

const char* dma_state_name(uint8_t state) {
  static const char* const kNames[] = {"idle", "busy", "done", "error"};
  return state < sizeof(kNames) / sizeof(kNames[0]) ? kNames[state] : "(unknown)";
}

bool dma_engine_setup_msix(const struct dma_engine* e, uint8_t vector, bool masked,
                           struct pci_msix* out) {
  if (!pci_msix_probe(e->fn.bdf, out) || !out->table_addr || !out->pba_addr) return false;
  struct msix_entry entry = {msi_address(lapic_id()), msi_data(vector),
                             masked ? kMsixEntryMasked : 0};
  pci_msix_write_entry(out, 0, &entry);
  pci_msix_set_control(e->fn.bdf, out, true, false);
  return true;
}

static uint8_t pattern_byte(uint32_t i, uint8_t seed) {
  return (uint8_t)((i * 7u) ^ (i >> 8) ^ (seed * 31u + 1u));
}

void dma_fill_pattern(uint8_t* buf, uint32_t length, uint8_t seed) {
  for (uint32_t i = 0; i < length; i++) buf[i] = pattern_byte(i, seed);
}

uint32_t dma_pattern_mismatch(const uint8_t* buf, uint32_t length, uint8_t seed) {
  for (uint32_t i = 0; i < length; i++) {
    if (buf[i] != pattern_byte(i, seed)) return i;
  }
  return length;
}

bool dma_all_bytes(const uint8_t* buf, uint32_t length, uint8_t value) {
  for (uint32_t i = 0; i < length; i++) {
    if (buf[i] != value) return false;
  }
  return true;
}
