#include "dma_viommu.h"

#include "acpi.h"
#include "check.h"
#include "lapic.h"
#include "print.h"
#include "scenario.h"
#include "strutil.h"
#include "viommu_common.h"

enum { kVectorSpurious = 0xff, kFaultWaitMs = 500 };

bool dma_engines_init(struct dma_engine* engines, int count) {
  const char* error = "";
  if (!check(lapic_enable(kVectorSpurious, &error), "LAPIC enabled")) return false;
  for (int i = 0; i < count; i++) {
    if (!checkf(dma_engine_open(i, &engines[i], &error), "DMA engine %d found (1b36:00f0)", i)) {
      printf("DMA engine %d: %s\n", i, error);
      return false;
    }
    pci_bdf_t bdf = engines[i].fn.bdf;
    printf("DMA engine %d at %02x:%02x.%x, BAR0 0x%lx\n", i, PCI_BUS(bdf), PCI_DEV(bdf),
           PCI_FN(bdf), engines[i].bar0);
  }
  return true;
}

static bool find_endpoints(struct dma_viommu_env* env, const struct boot_info* boot) {
  const char* source = "";
  uint64_t rsdp = acpi_find_rsdp(boot, &source);
  const struct acpi_header* viot = rsdp ? acpi_find_table(rsdp, "VIOT") : NULL;
  if (!check(viot != NULL, "ACPI lists a VIOT table")) return false;
  bool ok = true;
  for (int i = 0; i < kDmaEngines; i++) {
    uint16_t bdf = env->engines[i].fn.bdf;
    uint32_t id = 0xffffffff;
    bool found = viot_endpoint_id(viot, env->iommu.pci.fn.bdf, bdf, &id);
    ok &=
        checkf(found && id == bdf,
               "VIOT puts DMA engine %d behind the virtio-iommu as endpoint 0x%x (its BDF)", i, id);
    env->endpoint[i] = id;
  }
  return ok;
}

bool dma_viommu_env_init(struct dma_viommu_env* env, const struct boot_info* boot) {
  uint64_t fault_events = 0;
  env->fault_events =
      cmdline_get_uint(boot->cmdline, "fault_events", &fault_events) && fault_events != 0;
  if (!dma_engines_init(env->engines, kDmaEngines)) return false;
  const char* error = "";
  if (!check(virtio_iommu_open(&env->iommu, VIOMMU_WANTED_FEATURES, &error),
             "virtio-iommu found and started")) {
    printf("virtio-iommu: %s\n", error);
    return false;
  }
  const struct virtio_iommu_config* c = &env->iommu.config;
  if (!check(
          (env->iommu.pci.negotiated & VIRTIO_IOMMU_F_MAP_UNMAP) && (c->page_size_mask & kDmaPage),
          "virtio-iommu negotiated MAP_UNMAP with 4 KiB pages")) {
    return false;
  }
  virtio_iommu_set_bypass(&env->iommu, false);
  check(env->iommu.config.bypass == 0, "virtio-iommu bypass turned off");
  return find_endpoints(env, boot);
}

// Waits for a fault event from the engine's endpoint with an address in the page.
static void check_fault_event(struct dma_viommu_env* env, int engine, uint64_t iova,
                              const char* what) {
  struct virtio_iommu_fault f = {0};
  bool found = virtio_iommu_await_fault(&env->iommu, env->endpoint[engine], kFaultWaitMs, &f);
  if (!checkf(found, "%s: fault event from endpoint 0x%x", what, env->endpoint[engine])) return;
  // A device that learns of its faults without detail (VFIO's error IRQ) reports reason UNKNOWN
  // and no address (virtio 1.2 5.13.6.9).
  checkf(f.reason == kIommuFaultRMapping ||
             (f.reason == kIommuFaultRUnknown && !(f.flags & kIommuFaultFAddress)),
         "%s: fault reason MAPPING, or UNKNOWN without an address (%u)", what, f.reason);
  checkf(!(f.flags & kIommuFaultFAddress) || (f.address >= iova && f.address < iova + kDmaPage),
         "%s: fault address 0x%lx, if given, in the page 0x%lx", what, f.address, iova);
}

void check_dma_refused(struct dma_viommu_env* env, int engine, struct dma_result r,
                       uint8_t want_error, const uint8_t* dst_page, uint8_t canary,
                       uint64_t fault_iova, const char* what) {
  checkf(dma_failed_with(r, want_error), "%s: STATUS %s/%s (want error/%s)", what,
         r.finished ? dma_state_name(r.state) : "still busy", dma_error_name(r.error),
         dma_error_name(want_error));
  if (dst_page) {
    checkf(dma_all_bytes(dst_page, kDmaPage, canary), "%s: destination memory untouched", what);
  }
  if (!env) return;
  if (env->fault_events) {
    check_fault_event(env, engine, fault_iova, what);
  } else {
    int n = virtio_iommu_drain_faults(&env->iommu);
    note("%s: %d fault events (not required without fault_events=1)", what, n);
  }
}

bool check_dma_copied(struct dma_result r, const uint8_t* dst, uint32_t length, uint8_t seed,
                      const char* what) {
  uint32_t at = dma_pattern_mismatch(dst, length, seed);
  return checkf(dma_ok(r) && at == length, "%s: STATUS %s/%s, %u of %u bytes as sent", what,
                r.finished ? dma_state_name(r.state) : "still busy", dma_error_name(r.error), at,
                length);
}
