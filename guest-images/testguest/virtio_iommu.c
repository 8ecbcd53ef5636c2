#include "virtio_iommu.h"

#include "print.h"
#include "strutil.h"

enum {
  kRequestTimeoutMs = 5000,
  kTailSize = sizeof(struct virtio_iommu_req_tail),
  kCfgBypass = offsetof(struct virtio_iommu_config, bypass),
};

static void post_event_buffer(struct virtio_iommu* iommu, uint16_t i) {
  struct virtq_buf b = {(uint64_t)(uintptr_t)&iommu->event_bufs[i], sizeof(iommu->event_bufs[i]),
                        true, false};
  virtq_submit_at(&iommu->events, i, &b, 1, false);
}

bool virtio_iommu_open(struct virtio_iommu* iommu, uint64_t wanted, const char** error) {
  *iommu = (struct virtio_iommu){0};
  if (!virtio_pci_open(kVirtioTypeIommu, 0, &iommu->pci, error)) return false;
  if (!virtio_pci_negotiate(&iommu->pci, wanted, VIRTIO_F_VERSION_1, error)) return false;
  virtio_iommu_read_config(iommu);
  iommu->req_page = dma_alloc_page();
  iommu->reply_page = dma_alloc_page();
  iommu->event_bufs = dma_alloc_page();
  if (!iommu->req_page || !iommu->reply_page || !iommu->event_bufs) {
    *error = "DMA pool exhausted";
    return false;
  }
  if (!virtq_init(&iommu->req, &iommu->pci, 0, VIRTIO_MSI_NO_VECTOR) ||
      !virtq_init(&iommu->events, &iommu->pci, 1, VIRTIO_MSI_NO_VECTOR)) {
    *error = "request or event queue setup failed";
    return false;
  }
  virtio_pci_set_status(&iommu->pci, kVirtioStatusAcknowledge | kVirtioStatusDriver |
                                         kVirtioStatusFeaturesOk | kVirtioStatusDriverOk);
  uint16_t n = iommu->events.size < kIommuEventBuffers ? iommu->events.size : kIommuEventBuffers;
  for (uint16_t i = 0; i < n; i++) post_event_buffer(iommu, i);
  return true;
}

void virtio_iommu_read_config(struct virtio_iommu* iommu) {
  struct virtio_pci* p = &iommu->pci;
  struct virtio_iommu_config* c = &iommu->config;
  c->page_size_mask = virtio_pci_cfg64(p, offsetof(struct virtio_iommu_config, page_size_mask));
  c->input_start = virtio_pci_cfg64(p, offsetof(struct virtio_iommu_config, input_start));
  c->input_end = virtio_pci_cfg64(p, offsetof(struct virtio_iommu_config, input_end));
  c->domain_start = virtio_pci_cfg32(p, offsetof(struct virtio_iommu_config, domain_start));
  c->domain_end = virtio_pci_cfg32(p, offsetof(struct virtio_iommu_config, domain_end));
  c->probe_size = virtio_pci_cfg32(p, offsetof(struct virtio_iommu_config, probe_size));
  c->bypass = virtio_pci_cfg8(p, kCfgBypass);
}

void virtio_iommu_set_bypass(struct virtio_iommu* iommu, bool bypass) {
  virtio_pci_cfg_write8(&iommu->pci, kCfgBypass, bypass ? 1 : 0);
  iommu->config.bypass = virtio_pci_cfg8(&iommu->pci, kCfgBypass);
}

struct iommu_result virtio_iommu_send(struct virtio_iommu* iommu, const void* req, uint32_t len,
                                      uint32_t reply_len) {
  memcpy(iommu->req_page, req, len);
  memset(iommu->reply_page, 0, reply_len - kTailSize);
  memset(iommu->reply_page + reply_len - kTailSize, kIommuNoWrite, kTailSize);
  struct virtq_buf bufs[2] = {
      {(uint64_t)(uintptr_t)iommu->req_page, len, false, false},
      {(uint64_t)(uintptr_t)iommu->reply_page, reply_len, true, false},
  };
  virtq_submit(&iommu->req, bufs, 2);
  struct virtq_used_elem e;
  struct iommu_result r = {0};
  r.completed = virtq_wait(&iommu->req, kRequestTimeoutMs, &e);
  r.used_len = r.completed ? e.len : 0;
  r.status = ((volatile uint8_t*)iommu->reply_page)[reply_len - kTailSize];
  return r;
}

struct iommu_result iommu_attach(struct virtio_iommu* iommu, uint32_t domain, uint32_t endpoint,
                                 uint32_t flags) {
  struct virtio_iommu_req_attach r = {{kIommuTAttach, {0}}, domain, endpoint, flags, {0}};
  return virtio_iommu_send(iommu, &r, sizeof(r), kTailSize);
}

struct iommu_result iommu_detach(struct virtio_iommu* iommu, uint32_t domain, uint32_t endpoint) {
  struct virtio_iommu_req_detach r = {{kIommuTDetach, {0}}, domain, endpoint, {0}};
  return virtio_iommu_send(iommu, &r, sizeof(r), kTailSize);
}

struct iommu_result iommu_map(struct virtio_iommu* iommu, uint32_t domain, uint64_t virt_start,
                              uint64_t virt_end, uint64_t phys_start, uint32_t flags) {
  struct virtio_iommu_req_map r = {{kIommuTMap, {0}}, domain,     virt_start,
                                   virt_end,          phys_start, flags};
  return virtio_iommu_send(iommu, &r, sizeof(r), kTailSize);
}

struct iommu_result iommu_unmap(struct virtio_iommu* iommu, uint32_t domain, uint64_t virt_start,
                                uint64_t virt_end) {
  struct virtio_iommu_req_unmap r = {{kIommuTUnmap, {0}}, domain, virt_start, virt_end, {0}};
  return virtio_iommu_send(iommu, &r, sizeof(r), kTailSize);
}

struct iommu_result iommu_probe(struct virtio_iommu* iommu, uint32_t endpoint, uint32_t props_len) {
  struct virtio_iommu_req_probe r = {{kIommuTProbe, {0}}, endpoint, {0}};
  return virtio_iommu_send(iommu, &r, sizeof(r), props_len + kTailSize);
}

bool virtio_iommu_next_fault(struct virtio_iommu* iommu, uint32_t timeout_ms,
                             struct virtio_iommu_fault* out) {
  struct virtq_used_elem e;
  if (!virtq_wait(&iommu->events, timeout_ms, &e)) return false;
  uint16_t i = (uint16_t)e.id;
  if (i >= kIommuEventBuffers) return false;
  *out = iommu->event_bufs[i];
  memset(&iommu->event_bufs[i], 0, sizeof(iommu->event_bufs[i]));
  post_event_buffer(iommu, i);
  return true;
}

int virtio_iommu_drain_faults(struct virtio_iommu* iommu) {
  int n = 0;
  struct virtio_iommu_fault f;
  while (n < 64 && virtq_has_used(&iommu->events) && virtio_iommu_next_fault(iommu, 0, &f)) n++;
  return n;
}

bool virtio_iommu_await_fault(struct virtio_iommu* iommu, uint32_t endpoint, uint32_t timeout_ms,
                              struct virtio_iommu_fault* out) {
  bool found = false;
  for (int i = 0; i < kIommuEventBuffers && !found; i++) {
    if (!virtio_iommu_next_fault(iommu, timeout_ms, out)) break;
    printf("fault: reason %u flags 0x%x endpoint 0x%x address 0x%lx\n", out->reason, out->flags,
           out->endpoint, out->address);
    found = out->endpoint == endpoint;
  }
  virtio_iommu_drain_faults(iommu);
  return found;
}

const char* iommu_status_name(uint8_t status) {
  static const char* const kNames[] = {"S_OK",    "S_IOERR", "S_UNSUPP", "S_DEVERR", "S_INVAL",
                                       "S_RANGE", "S_NOENT", "S_FAULT",  "S_NOMEM"};
  if (status < sizeof(kNames) / sizeof(kNames[0])) return kNames[status];
  return status == kIommuNoWrite ? "(not written)" : "(unknown status)";
}

// VIOT: header, node_count at 36, node_offset at 38; nodes start with type, reserved, length.
enum {
  kViotNodeCount = 36,
  kViotNodeOffset = 38,
  kViotPciRange = 1,
  kViotVirtioIommuPci = 3,
  kViotMaxNodes = 256,
};

struct viot_node {
  uint8_t type;
  uint8_t reserved;
  uint16_t length;
} __attribute__((packed));

struct viot_pci_range {
  struct viot_node node;
  uint32_t endpoint_start;
  uint16_t segment_start;
  uint16_t segment_end;
  uint16_t bdf_start;
  uint16_t bdf_end;
  uint16_t output_node;
  uint8_t reserved[6];
} __attribute__((packed));
_Static_assert(sizeof(struct viot_pci_range) == 24, "VIOT PCI range node is 24 bytes");

struct viot_virtio_iommu_pci {
  struct viot_node node;
  uint16_t segment;
  uint16_t bdf;
  uint8_t reserved[8];
} __attribute__((packed));
_Static_assert(sizeof(struct viot_virtio_iommu_pci) == 16, "VIOT virtio-iommu node is 16 bytes");

// Offset of the virtio-iommu PCI node for bdf, or 0. Node bounds are checked against the table.
static uint32_t find_iommu_node(const struct acpi_header* viot, uint16_t bdf) {
  const uint8_t* t = (const uint8_t*)viot;
  if (viot->length < 48) return 0;
  uint16_t count, off;
  memcpy(&count, t + kViotNodeCount, 2);
  memcpy(&off, t + kViotNodeOffset, 2);
  for (int i = 0; i < count && i < kViotMaxNodes; i++) {
    struct viot_node n;
    if (off < 48 || off + sizeof(n) > viot->length) return 0;
    memcpy(&n, t + off, sizeof(n));
    if (n.length < sizeof(n) || off + n.length > viot->length) return 0;
    if (n.type == kViotVirtioIommuPci && n.length >= sizeof(struct viot_virtio_iommu_pci)) {
      struct viot_virtio_iommu_pci node;
      memcpy(&node, t + off, sizeof(node));
      if (node.segment == 0 && node.bdf == bdf) return off;
    }
    off = (uint16_t)(off + n.length);
  }
  return 0;
}

bool viot_lists_iommu(const struct acpi_header* viot, uint16_t iommu_bdf) {
  return find_iommu_node(viot, iommu_bdf) != 0;
}

bool viot_endpoint_id(const struct acpi_header* viot, uint16_t iommu_bdf, uint16_t endpoint_bdf,
                      uint32_t* endpoint) {
  uint32_t iommu_node = find_iommu_node(viot, iommu_bdf);
  if (!iommu_node) return false;
  const uint8_t* t = (const uint8_t*)viot;
  uint16_t count, off;
  memcpy(&count, t + kViotNodeCount, 2);
  memcpy(&off, t + kViotNodeOffset, 2);
  for (int i = 0; i < count && i < kViotMaxNodes; i++) {
    struct viot_node n;
    memcpy(&n, t + off, sizeof(n));
    if (n.length < sizeof(n) || off + n.length > viot->length) return false;
    if (n.type == kViotPciRange && n.length >= sizeof(struct viot_pci_range)) {
      struct viot_pci_range r;
      memcpy(&r, t + off, sizeof(r));
      if (r.output_node == iommu_node && r.segment_start == 0 && r.bdf_start <= endpoint_bdf &&
          endpoint_bdf <= r.bdf_end) {
        *endpoint = r.endpoint_start + (uint32_t)(endpoint_bdf - r.bdf_start);
        return true;
      }
    }
    off = (uint16_t)(off + n.length);
  }
  return false;
}
