// virtio-iommu (virtio 1.2 section 5.13): wire structures, a driver that sends one request at a
// time and keeps the event queue stocked, and the ACPI VIOT table that names its endpoints.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acpi.h"
#include "virtio_pci.h"
#include "virtq.h"

// 5.13.3 feature bits.
#define VIRTIO_IOMMU_F_INPUT_RANGE (1ull << 0)
#define VIRTIO_IOMMU_F_DOMAIN_RANGE (1ull << 1)
#define VIRTIO_IOMMU_F_MAP_UNMAP (1ull << 2)
#define VIRTIO_IOMMU_F_BYPASS (1ull << 3)
#define VIRTIO_IOMMU_F_PROBE (1ull << 4)
#define VIRTIO_IOMMU_F_MMIO (1ull << 5)
#define VIRTIO_IOMMU_F_BYPASS_CONFIG (1ull << 6)

// 5.13.4: struct virtio_iommu_config.
struct virtio_iommu_config {
  uint64_t page_size_mask;
  uint64_t input_start;
  uint64_t input_end;
  uint32_t domain_start;
  uint32_t domain_end;
  uint32_t probe_size;
  uint8_t bypass;
  uint8_t reserved[3];
} __attribute__((packed));
_Static_assert(sizeof(struct virtio_iommu_config) == 40, "config is 40 bytes (5.13.4)");
_Static_assert(offsetof(struct virtio_iommu_config, domain_start) == 24, "domain_range at 24");
_Static_assert(offsetof(struct virtio_iommu_config, bypass) == 36, "bypass at 36");

// 5.13.6: request types, status values, flags.
enum {
  kIommuTAttach = 1,
  kIommuTDetach = 2,
  kIommuTMap = 3,
  kIommuTUnmap = 4,
  kIommuTProbe = 5,
  kIommuSOk = 0,
  kIommuSIoErr = 1,
  kIommuSUnsupp = 2,
  kIommuSDevErr = 3,
  kIommuSInval = 4,
  kIommuSRange = 5,
  kIommuSNoEnt = 6,
  kIommuSFault = 7,
  kIommuSNoMem = 8,
  kIommuAttachFBypass = 1,
  kIommuMapFRead = 1,
  kIommuMapFWrite = 2,
  kIommuMapFMmio = 4,
  kIommuProbeTResvMem = 1,
  kIommuProbeTypeMask = 0xfff,
  kIommuResvMemReserved = 0,
  kIommuResvMemMsi = 1,
  kIommuFaultRUnknown = 0,
  kIommuFaultRDomain = 1,
  kIommuFaultRMapping = 2,
  kIommuFaultFRead = 1,
  kIommuFaultFWrite = 2,
  kIommuFaultFAddress = 0x100,
};

struct virtio_iommu_req_head {
  uint8_t type;
  uint8_t reserved[3];
} __attribute__((packed));

struct virtio_iommu_req_tail {
  uint8_t status;
  uint8_t reserved[3];
} __attribute__((packed));

// 5.13.6.3-5.13.6.7: the device-readable part of each request (the tail is written separately).
struct virtio_iommu_req_attach {
  struct virtio_iommu_req_head head;
  uint32_t domain;
  uint32_t endpoint;
  uint32_t flags;
  uint8_t reserved[4];
} __attribute__((packed));
_Static_assert(sizeof(struct virtio_iommu_req_attach) + 4 == 24, "ATTACH is 24 bytes");

struct virtio_iommu_req_detach {
  struct virtio_iommu_req_head head;
  uint32_t domain;
  uint32_t endpoint;
  uint8_t reserved[8];
} __attribute__((packed));
_Static_assert(sizeof(struct virtio_iommu_req_detach) + 4 == 24, "DETACH is 24 bytes");

struct virtio_iommu_req_map {
  struct virtio_iommu_req_head head;
  uint32_t domain;
  uint64_t virt_start;
  uint64_t virt_end;
  uint64_t phys_start;
  uint32_t flags;
} __attribute__((packed));
_Static_assert(sizeof(struct virtio_iommu_req_map) + 4 == 40, "MAP is 40 bytes");
_Static_assert(offsetof(struct virtio_iommu_req_map, phys_start) == 24, "phys_start at 24");

struct virtio_iommu_req_unmap {
  struct virtio_iommu_req_head head;
  uint32_t domain;
  uint64_t virt_start;
  uint64_t virt_end;
  uint8_t reserved[4];
} __attribute__((packed));
_Static_assert(sizeof(struct virtio_iommu_req_unmap) + 4 == 32, "UNMAP is 32 bytes");

struct virtio_iommu_req_probe {
  struct virtio_iommu_req_head head;
  uint32_t endpoint;
  uint8_t reserved[64];
} __attribute__((packed));
_Static_assert(sizeof(struct virtio_iommu_req_probe) == 72, "PROBE readable part is 72 bytes");

struct virtio_iommu_probe_property {
  uint16_t type;  // bits 0-11 type, 12-15 reserved
  uint16_t length;
} __attribute__((packed));

// 5.13.6.8.1: RESV_MEM, the property header included.
struct virtio_iommu_probe_resv_mem {
  struct virtio_iommu_probe_property head;
  uint8_t subtype;
  uint8_t reserved[3];
  uint64_t start;
  uint64_t end;
} __attribute__((packed));
_Static_assert(sizeof(struct virtio_iommu_probe_resv_mem) == 24, "RESV_MEM is 4 + 20 bytes");

// 5.13.6.9: struct virtio_iommu_fault.
struct virtio_iommu_fault {
  uint8_t reason;
  uint8_t reserved[3];
  uint32_t flags;
  uint32_t endpoint;
  uint32_t reserved1;
  uint64_t address;
} __attribute__((packed));
_Static_assert(sizeof(struct virtio_iommu_fault) == 24, "fault report is 24 bytes");
_Static_assert(offsetof(struct virtio_iommu_fault, address) == 16, "address at 16");

enum {
  kIommuEventBuffers = 8,
  kIommuNoWrite = 0xee,  // status canary: the device did not write the tail
  kIommuProbeMax = 2048,
};

struct virtio_iommu {
  struct virtio_pci pci;
  struct virtq req;
  struct virtq events;
  struct virtio_iommu_config config;
  uint8_t* req_page;    // device-readable request
  uint8_t* reply_page;  // device-writable part: PROBE properties and the tail
  struct virtio_iommu_fault* event_bufs;
};

// The outcome of one request: completed in time, the used length, the status byte (or the
// canary when the device did not write it).
struct iommu_result {
  bool completed;
  uint32_t used_len;
  uint8_t status;
};

bool virtio_iommu_open(struct virtio_iommu* iommu, uint64_t wanted, const char** error);
// Reads the configuration into iommu->config.
void virtio_iommu_read_config(struct virtio_iommu* iommu);
void virtio_iommu_set_bypass(struct virtio_iommu* iommu, bool bypass);

// Sends `len` device-readable bytes and a device-writable part of reply_len bytes whose last 4
// are the tail (pre-filled with the canary). Anything else in the reply is zeroed first.
struct iommu_result virtio_iommu_send(struct virtio_iommu* iommu, const void* req, uint32_t len,
                                      uint32_t reply_len);

struct iommu_result iommu_attach(struct virtio_iommu* iommu, uint32_t domain, uint32_t endpoint,
                                 uint32_t flags);
struct iommu_result iommu_detach(struct virtio_iommu* iommu, uint32_t domain, uint32_t endpoint);
struct iommu_result iommu_map(struct virtio_iommu* iommu, uint32_t domain, uint64_t virt_start,
                              uint64_t virt_end, uint64_t phys_start, uint32_t flags);
struct iommu_result iommu_unmap(struct virtio_iommu* iommu, uint32_t domain, uint64_t virt_start,
                                uint64_t virt_end);
// PROBE with a properties buffer of props_len bytes; the properties land in reply_page.
struct iommu_result iommu_probe(struct virtio_iommu* iommu, uint32_t endpoint, uint32_t props_len);

// Takes the next fault report within timeout_ms and gives its buffer back to the device.
bool virtio_iommu_next_fault(struct virtio_iommu* iommu, uint32_t timeout_ms,
                             struct virtio_iommu_fault* out);
// Discards pending fault reports; returns how many there were.
int virtio_iommu_drain_faults(struct virtio_iommu* iommu);
// Waits up to timeout_ms per report for one from endpoint, printing each report taken, then
// discards the rest. True when one came; *out holds it.
bool virtio_iommu_await_fault(struct virtio_iommu* iommu, uint32_t endpoint, uint32_t timeout_ms,
                              struct virtio_iommu_fault* out);

const char* iommu_status_name(uint8_t status);

// VIOT (virtio 1.2 section 5.13 platform binding, ACPI table "VIOT"): true when the table lists
// a virtio-iommu PCI node at iommu_bdf (segment 0); *endpoint gets the endpoint ID a PCI range
// node behind that IOMMU gives to endpoint_bdf, or false when no range covers it.
bool viot_lists_iommu(const struct acpi_header* viot, uint16_t iommu_bdf);
bool viot_endpoint_id(const struct acpi_header* viot, uint16_t iommu_bdf, uint16_t endpoint_bdf,
                      uint32_t* endpoint);
