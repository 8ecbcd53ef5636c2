// Shared by the DMA engine scenarios behind the virtio-iommu: the IOMMU and two engines with
// their VIOT endpoint IDs, and the judgement of a copy the IOMMU must refuse.
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "boot.h"
#include "dma_engine.h"
#include "virtio_iommu.h"

enum { kDmaEngines = 2, kDmaPage = 4096 };

struct dma_viommu_env {
  struct virtio_iommu iommu;
  struct dma_engine engines[kDmaEngines];
  uint32_t endpoint[kDmaEngines];  // endpoint IDs from VIOT
  // fault_events=1 on the command line: a refused copy must also raise a fault event. A
  // vfio-user server checks IOVAs against the regions it was given and reports a miss only in
  // its own STATUS register; the VMM hears of it only where it has a channel for it.
  bool fault_events;
};

// LAPIC, the virtio-iommu (bypass turned off), two DMA engines and their VIOT endpoint IDs.
// false when the rest of the scenario cannot run (the failure has been counted).
bool dma_viommu_env_init(struct dma_viommu_env* env, const struct boot_info* boot);

// Only the DMA engines (LAPIC included), for runs without the vIOMMU: devices then address
// guest-physical memory.
bool dma_engines_init(struct dma_engine* engines, int count);

// A copy that must fail: STATUS error with want_error, the destination page (unless NULL) still
// holding canary, and, with fault_events, a fault event from the endpoint at an address in
// [fault_iova, fault_iova + kDmaPage). env NULL (no vIOMMU): STATUS and memory only.
void check_dma_refused(struct dma_viommu_env* env, int engine, struct dma_result r,
                       uint8_t want_error, const uint8_t* dst_page, uint8_t canary,
                       uint64_t fault_iova, const char* what);

// A copy that must succeed and leave the pattern of seed in dst.
bool check_dma_copied(struct dma_result r, const uint8_t* dst, uint32_t length, uint8_t seed,
                      const char* what);
