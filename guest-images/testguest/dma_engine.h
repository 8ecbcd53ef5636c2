// A driver for the PCI DMA copy engine served by vfio-user-dma-server (register layout in
// devices/vfio/server/dma_engine.h): find a function by 1b36:00f0, reach BAR0, program a copy
// between two bus addresses (IOVAs behind the virtio-iommu, GPAs without it), ring the doorbell
// and wait for the outcome by polling STATUS under a deadline or by taking the MSI-X interrupt.
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "msix.h"
#include "pci.h"

enum {
  kDmaEngineVendor = 0x1b36,
  kDmaEngineDevice = 0x00f0,
  kDmaEngineBar0Size = 0x2000,
  // BAR0 registers.
  kDmaRegSrc = 0x00,
  kDmaRegDst = 0x08,
  kDmaRegLength = 0x10,
  kDmaRegDoorbell = 0x14,
  kDmaRegStatus = 0x18,
  kDmaRegCompletions = 0x20,
  kDmaRegIntStatus = 0x30,  // INTx mode: bit 0 asserted; write 1 to acknowledge
  kDmaMsixTable = 0x1000,
  kDmaMsixPba = 0x1800,
  // STATUS: bits 0-7 state, bits 8-15 error.
  kDmaStateIdle = 0,
  kDmaStateBusy = 1,
  kDmaStateDone = 2,
  kDmaStateError = 3,
  kDmaErrNone = 0,
  kDmaErrSrcUnmapped = 1,
  kDmaErrDstUnmapped = 2,
  kDmaErrDstReadOnly = 3,
  kDmaErrBadLength = 4,
  kDmaErrBusy = 5,
  kDmaErrPeer = 6,
  kDmaCopyTimeoutMs = 2000,
};

struct dma_engine {
  struct pci_function fn;
  uint64_t bar0;  // identity-mapped address of BAR0
};

// What one copy came to: whether STATUS left busy before the deadline, and the final state,
// error and completion count.
struct dma_result {
  bool finished;
  uint8_t state;
  uint8_t error;
  uint64_t completions;
};

// Finds the instance-th engine (enumeration order), checks BAR0, maps it and turns on memory
// decoding and bus mastering. On failure returns false and sets *error.
bool dma_engine_open(int instance, struct dma_engine* e, const char** error);

// Programs source, destination and length and rings the doorbell; does not wait.
void dma_engine_start(const struct dma_engine* e, uint64_t src, uint64_t dst, uint32_t length);
// Polls STATUS until the copy is no longer busy or timeout_ms passes.
struct dma_result dma_engine_wait(const struct dma_engine* e, uint32_t timeout_ms);
// start + wait with kDmaCopyTimeoutMs.
struct dma_result dma_engine_copy(const struct dma_engine* e, uint64_t src, uint64_t dst,
                                  uint32_t length);

uint32_t dma_engine_status(const struct dma_engine* e);
uint64_t dma_engine_completions(const struct dma_engine* e);
uint64_t dma_engine_read64(const struct dma_engine* e, uint32_t reg);

// True when the copy finished with STATUS done and no error.
bool dma_ok(struct dma_result r);
// True when the copy finished with STATUS error and this error code.
bool dma_failed_with(struct dma_result r, uint8_t error);
const char* dma_error_name(uint8_t error);
const char* dma_state_name(uint8_t state);

// Routes MSI-X entry 0 of the engine to vector on this CPU, masked or not, and enables MSI-X.
bool dma_engine_setup_msix(const struct dma_engine* e, uint8_t vector, bool masked,
                           struct pci_msix* out);

// A byte pattern that differs per seed and per offset, so a copy from the wrong place or of the
// wrong length shows.
void dma_fill_pattern(uint8_t* buf, uint32_t length, uint8_t seed);
// Offset of the first byte that differs from the pattern, or length when none does.
uint32_t dma_pattern_mismatch(const uint8_t* buf, uint32_t length, uint8_t seed);
// True when every byte is `value`.
bool dma_all_bytes(const uint8_t* buf, uint32_t length, uint8_t value);
