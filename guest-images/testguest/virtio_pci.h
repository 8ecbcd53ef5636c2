// A small driver for the modern virtio-pci transport (virtio 1.2 section 4.1): finding a device,
// its vendor capabilities, reset, feature negotiation, queue setup and MSI-X vector routing.
// Ring and buffer addresses the device sees are bus addresses: guest-physical without a
// vIOMMU, IOVAs when the device sits behind one, through a per-device translation hook.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pci.h"

enum {
  kVirtioPciVendor = 0x1af4,
  kVirtioPciModernBase = 0x1040,  // device id = 0x1040 + virtio device type (4.1.2.1)
  kVirtioTypeBlock = 2,
  kVirtioTypeIommu = 23,
};

// Device status bits (2.1).
enum {
  kVirtioStatusAcknowledge = 1,
  kVirtioStatusDriver = 2,
  kVirtioStatusDriverOk = 4,
  kVirtioStatusFeaturesOk = 8,
  kVirtioStatusNeedsReset = 0x40,
  kVirtioStatusFailed = 0x80,
};

// Reserved feature bits (6).
#define VIRTIO_F_INDIRECT_DESC (1ull << 28)
#define VIRTIO_F_EVENT_IDX (1ull << 29)
#define VIRTIO_F_VERSION_1 (1ull << 32)
#define VIRTIO_F_ACCESS_PLATFORM (1ull << 33)

// 4.1.4.3: struct virtio_pci_common_cfg.
struct virtio_pci_common_cfg {
  uint32_t device_feature_select;
  uint32_t device_feature;
  uint32_t driver_feature_select;
  uint32_t driver_feature;
  uint16_t config_msix_vector;
  uint16_t num_queues;
  uint8_t device_status;
  uint8_t config_generation;
  uint16_t queue_select;
  uint16_t queue_size;
  uint16_t queue_msix_vector;
  uint16_t queue_enable;
  uint16_t queue_notify_off;
  uint64_t queue_desc;
  uint64_t queue_driver;
  uint64_t queue_device;
} __attribute__((packed));
_Static_assert(sizeof(struct virtio_pci_common_cfg) == 56, "common cfg is 56 bytes (4.1.4.3)");
_Static_assert(offsetof(struct virtio_pci_common_cfg, device_status) == 20, "status at 20");
_Static_assert(offsetof(struct virtio_pci_common_cfg, queue_desc) == 32, "queue_desc at 32");

#define VIRTIO_MSI_NO_VECTOR 0xffff

// Maps a guest-physical address of ring or request memory to the bus address the device uses.
typedef uint64_t (*virtio_bus_addr_fn)(void* ctx, uint64_t gpa);

struct virtio_pci {
  struct pci_function fn;
  uint64_t common;  // addresses of the capability windows, identity-mapped
  uint64_t notify;
  uint64_t isr;
  uint64_t device;
  uint32_t device_len;
  uint32_t notify_multiplier;
  uint64_t offered;             // device features
  uint64_t negotiated;          // after virtio_pci_negotiate
  virtio_bus_addr_fn bus_addr;  // NULL: bus address = guest-physical address
  void* bus_ctx;
};

// Finds the instance-th function with device id 0x1040 + type, enables memory decoding and bus
// mastering and locates the common, notify, ISR and device capabilities. false (with *error) when
// the function or any of the four capabilities is missing or unreachable.
bool virtio_pci_open(uint16_t type, int instance, struct virtio_pci* dev, const char** error);

uint64_t virtio_pci_bus_addr(const struct virtio_pci* dev, uint64_t gpa);

// Writes 0 to device_status and waits (bounded) for it to read back 0 (4.1.4.3.1).
bool virtio_pci_reset(struct virtio_pci* dev);
uint8_t virtio_pci_status(const struct virtio_pci* dev);
void virtio_pci_set_status(struct virtio_pci* dev, uint8_t status);

// Reset, ACKNOWLEDGE, DRIVER, reads the offered features, writes offered & wanted and checks
// FEATURES_OK sticks (3.1.1). false when a feature in `required` is not offered or FEATURES_OK is
// refused; leaves the device FAILED in that case.
bool virtio_pci_negotiate(struct virtio_pci* dev, uint64_t wanted, uint64_t required,
                          const char** error);

// Device-specific configuration reads, repeated until config_generation is stable (4.1.4.3.1).
uint8_t virtio_pci_cfg8(const struct virtio_pci* dev, uint32_t off);
uint16_t virtio_pci_cfg16(const struct virtio_pci* dev, uint32_t off);
uint32_t virtio_pci_cfg32(const struct virtio_pci* dev, uint32_t off);
uint64_t virtio_pci_cfg64(const struct virtio_pci* dev, uint32_t off);
void virtio_pci_cfg_write8(struct virtio_pci* dev, uint32_t off, uint8_t value);

uint16_t virtio_pci_num_queues(const struct virtio_pci* dev);
// The queue's maximum size as the device reports it (0: no such queue).
uint16_t virtio_pci_queue_max(struct virtio_pci* dev, uint16_t index);
// Programs size and the three ring bus addresses, routes the queue to msix_vector (or
// VIRTIO_MSI_NO_VECTOR) and enables it. Returns the notify address, or 0 when the device refused
// the MSI-X vector.
uint64_t virtio_pci_queue_enable(struct virtio_pci* dev, uint16_t index, uint16_t size,
                                 uint64_t desc, uint64_t driver, uint64_t device,
                                 uint16_t msix_vector);
// Routes configuration-change interrupts; returns the vector the device kept.
uint16_t virtio_pci_set_config_vector(struct virtio_pci* dev, uint16_t vector);
