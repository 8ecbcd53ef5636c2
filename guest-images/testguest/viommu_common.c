#include "viommu_common.h"

#include "acpi.h"
#include "check.h"
#include "lapic.h"
#include "print.h"
#include "strutil.h"

enum { kVectorSpurious = 0xff };

void check_spec_known_qemu_departure(const struct viommu_env* env, bool ok, const char* name,
                                     const char* detail) {
  if (!ok && env->qemu) {
    note("QEMU departs from the spec: %s (%s)", name, detail);
    return;
  }
  check(ok, name);
}

void check_known_qemu_difference(const struct viommu_env* env, bool ok, const char* name,
                                 const char* detail) {
  if (!ok && env->qemu) {
    note("QEMU differs (the spec leaves this open): %s (%s)", name, detail);
    return;
  }
  check(ok, name);
}

void check_status_known_qemu_departure(const struct viommu_env* env, struct iommu_result r,
                                       uint8_t want, const char* what) {
  char detail[48];
  snprintf(detail, sizeof(detail), "got %s, want %s",
           r.completed ? iommu_status_name(r.status) : "no completion", iommu_status_name(want));
  check_spec_known_qemu_departure(env, r.completed && r.status == want, what, detail);
}

bool check_status(struct iommu_result r, uint8_t want, const char* what) {
  return checkf(r.completed && r.status == want, "%s: %s (want %s)", what,
                r.completed ? iommu_status_name(r.status) : "no completion",
                iommu_status_name(want));
}

static void print_config(const struct virtio_iommu_config* c) {
  printf(
      "virtio-iommu config: page_size_mask 0x%lx input 0x%lx-0x%lx domains %u-%u probe_size "
      "%u bypass %u\n",
      c->page_size_mask, c->input_start, c->input_end, c->domain_start, c->domain_end,
      c->probe_size, c->bypass);
}

static bool check_config(struct viommu_env* env) {
  const struct virtio_iommu_config* c = &env->iommu.config;
  uint64_t offered = env->iommu.pci.offered;
  print_config(c);
  printf("virtio-iommu features offered 0x%lx\n", offered);
  check((offered & VIRTIO_IOMMU_F_MAP_UNMAP) && (offered & VIRTIO_IOMMU_F_PROBE) &&
            (offered & VIRTIO_IOMMU_F_BYPASS_CONFIG) && (offered & VIRTIO_F_VERSION_1),
        "virtio-iommu offers VERSION_1, MAP_UNMAP, PROBE and BYPASS_CONFIG");
  check(!(offered & VIRTIO_IOMMU_F_BYPASS), "deprecated BYPASS is not offered with BYPASS_CONFIG");
  uint64_t granule = c->page_size_mask & -c->page_size_mask;
  checkf(granule == kViommuPage, "page granularity is 4 KiB (0x%lx)", granule);
  check(c->page_size_mask & (1ull << 21), "page_size_mask has the 2 MiB bit");
  check(c->input_start <= 0x10000000 && c->input_end >= 0x7fffffff,
        "input range covers the IOVAs the scenarios use");
  check(c->domain_end >= c->domain_start && c->domain_end - c->domain_start >= 16,
        "domain range holds at least 17 domains");
  checkf(c->probe_size >= sizeof(struct virtio_iommu_probe_resv_mem) &&
             c->probe_size <= kIommuProbeMax,
         "probe_size %u fits a RESV_MEM property and our buffer", c->probe_size);
  check(c->bypass <= 1, "bypass reads 0 or 1");
  return granule == kViommuPage;
}

static bool check_viot(struct viommu_env* env, const struct boot_info* boot) {
  const char* source = "";
  uint64_t rsdp = acpi_find_rsdp(boot, &source);
  const struct acpi_header* viot = rsdp ? acpi_find_table(rsdp, "VIOT") : NULL;
  if (!check(viot != NULL, "ACPI lists a VIOT table")) return false;
  uint16_t iommu_bdf = env->iommu.pci.fn.bdf;
  checkf(viot_lists_iommu(viot, iommu_bdf), "VIOT has a virtio-iommu PCI node for %02x:%02x.%x",
         PCI_BUS(iommu_bdf), PCI_DEV(iommu_bdf), PCI_FN(iommu_bdf));
  bool ok = true;
  for (int i = 0; i < kViommuEndpoints; i++) {
    uint16_t bdf = env->disks[i].pci.fn.bdf;
    uint32_t id = 0xffffffff;
    bool found = viot_endpoint_id(viot, iommu_bdf, bdf, &id);
    ok &= checkf(found && id == bdf, "VIOT puts disk %d (%02x:%02x.%x) behind it as endpoint 0x%x",
                 i, PCI_BUS(bdf), PCI_DEV(bdf), PCI_FN(bdf), id);
    env->endpoint[i] = id;
  }
  return ok;
}

// A device/function number on bus 0 that no function answers to.
static uint32_t absent_bdf(void) {
  for (int dev = 31; dev > 0; dev--) {
    pci_bdf_t bdf = PCI_BDF(0, dev, 7);
    if (pci_read16(bdf, kPciVendorId) == 0xffff && pci_read16(PCI_BDF(0, dev, 0), 0) == 0xffff) {
      return bdf;
    }
  }
  return 0xfeff;
}

bool viommu_env_init(struct viommu_env* env, const struct boot_info* boot) {
  char vmm[16] = {0};
  env->qemu = cmdline_get(boot->cmdline, "vmm", vmm, sizeof(vmm)) && strcmp(vmm, "qemu") == 0;
  const char* error = "";
  if (!check(lapic_enable(kVectorSpurious, &error), "LAPIC enabled")) return false;
  if (!check(virtio_iommu_open(&env->iommu, VIOMMU_WANTED_FEATURES, &error),
             "virtio-iommu found and started")) {
    printf("virtio-iommu: %s\n", error);
    return false;
  }
  if (!check_config(env)) return false;
  for (int i = 0; i < kViommuEndpoints; i++) {
    if (!checkf(virtio_blk_find(i, &env->disks[i], &error), "virtio-blk %d found", i)) {
      printf("virtio-blk %d: %s\n", i, error);
      return false;
    }
  }
  env->absent_endpoint = absent_bdf();
  return check_viot(env, boot);
}
