// Shared by the viommu scenarios: bringing the device up with its endpoints checked against VIOT,
// and judging a status against the spec where QEMU is known to depart from it.
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "boot.h"
#include "virtio_blk.h"
#include "virtio_iommu.h"

#define VIOMMU_WANTED_FEATURES                                                           \
  (VIRTIO_IOMMU_F_INPUT_RANGE | VIRTIO_IOMMU_F_DOMAIN_RANGE | VIRTIO_IOMMU_F_MAP_UNMAP | \
   VIRTIO_IOMMU_F_PROBE | VIRTIO_IOMMU_F_MMIO | VIRTIO_IOMMU_F_BYPASS_CONFIG)

enum { kViommuPage = 4096, kViommuEndpoints = 2 };

struct viommu_env {
  struct virtio_iommu iommu;
  struct virtio_blk disks[kViommuEndpoints];  // found, not started
  uint32_t endpoint[kViommuEndpoints];        // endpoint IDs from VIOT
  uint32_t absent_endpoint;                   // an ID no function answers to
  bool qemu;                                  // command line says vmm=qemu
};

// LAPIC, the virtio-iommu, its config, VIOT and two virtio-blk endpoints. false when the rest of
// the scenario cannot run (the failure has been counted).
bool viommu_env_init(struct viommu_env* env, const struct boot_info* boot);

// A check of spec behaviour that QEMU 7.2 is known to miss: on vmm=qemu a miss prints
// "# QEMU departs from the spec: <name> (<detail>)" and is not counted.
void check_spec_known_qemu_departure(const struct viommu_env* env, bool ok, const char* name,
                                     const char* detail);

// Like check_spec_known_qemu_departure, for behaviour the spec leaves open but this project
// requires: "# QEMU differs (the spec leaves this open): <name> (<detail>)".
void check_known_qemu_difference(const struct viommu_env* env, bool ok, const char* name,
                                 const char* detail);

// check_status for a rule QEMU 7.2 is known to break: on vmm=qemu a miss is printed, not counted.
void check_status_known_qemu_departure(const struct viommu_env* env, struct iommu_result r,
                                       uint8_t want, const char* what);

// Status check with the status name in the line: "<what>: <got> (want <want>)".
bool check_status(struct iommu_result r, uint8_t want, const char* what);

// The UNMAP examples of 5.13.6.6 and the split-refusal rule.
void viommu_unmap_examples(struct viommu_env* env, uint32_t domain, uint64_t iova, uint64_t phys);
