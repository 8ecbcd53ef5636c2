#include "virtio_pci.h"

#include "arch.h"
#include "paging.h"

// 4.1.4: struct virtio_pci_cap, read field by field from configuration space.
enum {
  kPciCapVendor = 0x09,
  kCapCfgType = 3,
  kCapBar = 4,
  kCapOffset = 8,
  kCapLength = 12,
  kCapNotifyMultiplier = 16,  // struct virtio_pci_notify_cap (4.1.4.4)
  kCfgCommon = 1,
  kCfgNotify = 2,
  kCfgIsr = 3,
  kCfgDevice = 4,
  kMaxCaps = 32,
  kResetPolls = 100000,
  kGenerationRetries = 8,
};

#define COMMON(field) offsetof(struct virtio_pci_common_cfg, field)

// The identity-mapped address of [offset, offset + length) in memory BAR bar, or 0.
static uint64_t cap_window(pci_bdf_t bdf, uint8_t bar_index, uint32_t offset, uint32_t length) {
  if (bar_index >= pci_bar_slots(bdf)) return 0;
  struct pci_bar bar;
  pci_bar_probe(bdf, bar_index, &bar);
  if (bar.io || bar.base == 0 || length == 0 || bar.size < length || offset > bar.size - length) {
    return 0;
  }
  uint64_t addr = bar.base + offset;
  if (!paging_is_mapped(addr, length) && !paging_identity_map(addr, length)) return 0;
  return addr;
}

static bool find_caps(struct virtio_pci* dev, const char** error) {
  pci_bdf_t bdf = dev->fn.bdf;
  uint8_t cap = 0;
  for (int i = 0; i < kMaxCaps && (cap = pci_find_cap(bdf, kPciCapVendor, cap)) != 0; i++) {
    uint8_t type = pci_read8(bdf, cap + kCapCfgType);
    uint8_t bar = pci_read8(bdf, cap + kCapBar);
    uint32_t offset = pci_read32(bdf, cap + kCapOffset);
    uint32_t length = pci_read32(bdf, cap + kCapLength);
    // The first capability of each type is the preferred one (4.1.4).
    uint64_t* slot = type == kCfgCommon   ? &dev->common
                     : type == kCfgNotify ? &dev->notify
                     : type == kCfgIsr    ? &dev->isr
                     : type == kCfgDevice ? &dev->device
                                          : NULL;
    if (!slot || *slot) continue;
    if (type == kCfgCommon && length < sizeof(struct virtio_pci_common_cfg)) continue;
    *slot = cap_window(bdf, bar, offset, length);
    if (type == kCfgNotify) dev->notify_multiplier = pci_read32(bdf, cap + kCapNotifyMultiplier);
    if (type == kCfgDevice) dev->device_len = length;
  }
  *error = !dev->common   ? "no reachable common configuration capability"
           : !dev->notify ? "no reachable notification capability"
           : !dev->isr    ? "no reachable ISR capability"
           : !dev->device ? "no reachable device configuration capability"
                          : NULL;
  return *error == NULL;
}

bool virtio_pci_open(uint16_t type, int instance, struct virtio_pci* dev, const char** error) {
  *dev = (struct virtio_pci){0};
  if (!pci_find_device(kVirtioPciVendor, (uint16_t)(kVirtioPciModernBase + type), instance,
                       &dev->fn)) {
    *error = "no such virtio-pci function";
    return false;
  }
  pci_set_command(dev->fn.bdf, kPciCommandMemory | kPciCommandBusMaster, 0);
  return find_caps(dev, error);
}

uint64_t virtio_pci_bus_addr(const struct virtio_pci* dev, uint64_t gpa) {
  return dev->bus_addr ? dev->bus_addr(dev->bus_ctx, gpa) : gpa;
}

uint8_t virtio_pci_status(const struct virtio_pci* dev) {
  return mmio_read8(dev->common + COMMON(device_status));
}

void virtio_pci_set_status(struct virtio_pci* dev, uint8_t status) {
  mmio_write8(dev->common + COMMON(device_status), status);
}

bool virtio_pci_reset(struct virtio_pci* dev) {
  virtio_pci_set_status(dev, 0);
  for (int i = 0; i < kResetPolls; i++) {
    if (virtio_pci_status(dev) == 0) return true;
    cpu_relax();
  }
  return false;
}

static uint64_t device_features(const struct virtio_pci* dev) {
  mmio_write32(dev->common + COMMON(device_feature_select), 0);
  uint64_t lo = mmio_read32(dev->common + COMMON(device_feature));
  mmio_write32(dev->common + COMMON(device_feature_select), 1);
  uint64_t hi = mmio_read32(dev->common + COMMON(device_feature));
  return lo | hi << 32;
}

bool virtio_pci_negotiate(struct virtio_pci* dev, uint64_t wanted, uint64_t required,
                          const char** error) {
  if (!virtio_pci_reset(dev)) {
    *error = "device_status did not read 0 after reset";
    return false;
  }
  virtio_pci_set_status(dev, kVirtioStatusAcknowledge);
  virtio_pci_set_status(dev, kVirtioStatusAcknowledge | kVirtioStatusDriver);
  dev->offered = device_features(dev);
  if ((dev->offered & required) != required) {
    virtio_pci_set_status(dev, kVirtioStatusFailed);
    *error = "a required feature is not offered";
    return false;
  }
  dev->negotiated = dev->offered & (wanted | required);
  mmio_write32(dev->common + COMMON(driver_feature_select), 0);
  mmio_write32(dev->common + COMMON(driver_feature), (uint32_t)dev->negotiated);
  mmio_write32(dev->common + COMMON(driver_feature_select), 1);
  mmio_write32(dev->common + COMMON(driver_feature), (uint32_t)(dev->negotiated >> 32));
  uint8_t status = kVirtioStatusAcknowledge | kVirtioStatusDriver | kVirtioStatusFeaturesOk;
  virtio_pci_set_status(dev, status);
  if (!(virtio_pci_status(dev) & kVirtioStatusFeaturesOk)) {
    virtio_pci_set_status(dev, kVirtioStatusFailed);
    *error = "the device refused FEATURES_OK";
    return false;
  }
  return true;
}

static uint8_t generation(const struct virtio_pci* dev) {
  return mmio_read8(dev->common + COMMON(config_generation));
}

// Reads width bytes at off, retrying while the generation changes underneath.
static uint64_t cfg_read(const struct virtio_pci* dev, uint32_t off, int width) {
  uint64_t value = 0;
  for (int i = 0; i < kGenerationRetries; i++) {
    uint8_t before = generation(dev);
    uint64_t a = dev->device + off;
    switch (width) {
      case 1:
        value = mmio_read8(a);
        break;
      case 2:
        value = mmio_read16(a);
        break;
      case 4:
        value = mmio_read32(a);
        break;
      default:
        value = mmio_read32(a) | (uint64_t)mmio_read32(a + 4) << 32;
        break;
    }
    if (generation(dev) == before) break;
  }
  return value;
}

uint8_t virtio_pci_cfg8(const struct virtio_pci* dev, uint32_t off) {
  return (uint8_t)cfg_read(dev, off, 1);
}
uint16_t virtio_pci_cfg16(const struct virtio_pci* dev, uint32_t off) {
  return (uint16_t)cfg_read(dev, off, 2);
}
uint32_t virtio_pci_cfg32(const struct virtio_pci* dev, uint32_t off) {
  return (uint32_t)cfg_read(dev, off, 4);
}
uint64_t virtio_pci_cfg64(const struct virtio_pci* dev, uint32_t off) {
  return cfg_read(dev, off, 8);
}
void virtio_pci_cfg_write8(struct virtio_pci* dev, uint32_t off, uint8_t value) {
  mmio_write8(dev->device + off, value);
}

uint16_t virtio_pci_num_queues(const struct virtio_pci* dev) {
  return mmio_read16(dev->common + COMMON(num_queues));
}

uint16_t virtio_pci_queue_max(struct virtio_pci* dev, uint16_t index) {
  mmio_write16(dev->common + COMMON(queue_select), index);
  return mmio_read16(dev->common + COMMON(queue_size));
}

// 64-bit fields are written as two 32-bit halves, low first (4.1.3.1).
static void write64(uint64_t addr, uint64_t value) {
  mmio_write32(addr, (uint32_t)value);
  mmio_write32(addr + 4, (uint32_t)(value >> 32));
}

uint64_t virtio_pci_queue_enable(struct virtio_pci* dev, uint16_t index, uint16_t size,
                                 uint64_t desc, uint64_t driver, uint64_t device,
                                 uint16_t msix_vector) {
  uint64_t c = dev->common;
  mmio_write16(c + COMMON(queue_select), index);
  mmio_write16(c + COMMON(queue_size), size);
  write64(c + COMMON(queue_desc), desc);
  write64(c + COMMON(queue_driver), driver);
  write64(c + COMMON(queue_device), device);
  mmio_write16(c + COMMON(queue_msix_vector), msix_vector);
  if (mmio_read16(c + COMMON(queue_msix_vector)) != msix_vector) return 0;
  uint16_t notify_off = mmio_read16(c + COMMON(queue_notify_off));
  mmio_write16(c + COMMON(queue_enable), 1);
  return dev->notify + (uint64_t)notify_off * dev->notify_multiplier;
}

uint16_t virtio_pci_set_config_vector(struct virtio_pci* dev, uint16_t vector) {
  mmio_write16(dev->common + COMMON(config_msix_vector), vector);
  return mmio_read16(dev->common + COMMON(config_msix_vector));
}
