// The iommufd uAPI (Linux include/uapi/linux/iommufd.h, 6.2+) and the VFIO cdev ioctls that
// bind a device to it (include/uapi/linux/vfio.h, 6.6+). Our build headers are 6.1, older than
// both, so the parts we use are declared here from the documented uAPI; a system header that has
// them wins. Every kernel backend includes this and nothing else for iommufd.
#pragma once

#include <linux/ioctl.h>
#include <linux/types.h>
#include <linux/vfio.h>

#include <cstddef>

#if __has_include(<linux/iommufd.h>)
#include <linux/iommufd.h>
#else

#define IOMMUFD_TYPE (';')

enum {
  IOMMUFD_CMD_BASE = 0x80,
  IOMMUFD_CMD_DESTROY = IOMMUFD_CMD_BASE,
  IOMMUFD_CMD_IOAS_ALLOC = 0x81,
  IOMMUFD_CMD_IOAS_ALLOW_IOVAS = 0x82,
  IOMMUFD_CMD_IOAS_COPY = 0x83,
  IOMMUFD_CMD_IOAS_IOVA_RANGES = 0x84,
  IOMMUFD_CMD_IOAS_MAP = 0x85,
  IOMMUFD_CMD_IOAS_UNMAP = 0x86,
};

// IOMMU_DESTROY: destroys any object by id.
struct iommu_destroy {
  __u32 size;
  __u32 id;
};
#define IOMMU_DESTROY _IO(IOMMUFD_TYPE, IOMMUFD_CMD_DESTROY)

struct iommu_ioas_alloc {
  __u32 size;
  __u32 flags;
  __u32 out_ioas_id;
};
#define IOMMU_IOAS_ALLOC _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOC)

struct iommu_iova_range {
  __aligned_u64 start;
  __aligned_u64 last;
};

struct iommu_ioas_iova_ranges {
  __u32 size;
  __u32 ioas_id;
  __u32 num_iovas;
  __u32 __reserved;
  __aligned_u64 allowed_iovas;
  __aligned_u64 out_iova_alignment;
};
#define IOMMU_IOAS_IOVA_RANGES _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_IOVA_RANGES)

enum iommufd_ioas_map_flags {
  IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0,
  IOMMU_IOAS_MAP_WRITEABLE = 1 << 1,
  IOMMU_IOAS_MAP_READABLE = 1 << 2,
};

struct iommu_ioas_map {
  __u32 size;
  __u32 flags;
  __u32 ioas_id;
  __u32 __reserved;
  __aligned_u64 user_va;
  __aligned_u64 length;
  __aligned_u64 iova;
};
#define IOMMU_IOAS_MAP _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_MAP)

struct iommu_ioas_copy {
  __u32 size;
  __u32 flags;
  __u32 dst_ioas_id;
  __u32 src_ioas_id;
  __aligned_u64 length;
  __aligned_u64 dst_iova;
  __aligned_u64 src_iova;
};
#define IOMMU_IOAS_COPY _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_COPY)

struct iommu_ioas_unmap {
  __u32 size;
  __u32 ioas_id;
  __aligned_u64 iova;
  __aligned_u64 length;
};
#define IOMMU_IOAS_UNMAP _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_UNMAP)

#endif  // __has_include(<linux/iommufd.h>)

#ifndef VFIO_DEVICE_BIND_IOMMUFD
// VFIO cdev (/dev/vfio/devices/vfioN) binding to an iommufd, Linux 6.6 vfio.h.
struct vfio_device_bind_iommufd {
  __u32 argsz;
  __u32 flags;
  __s32 iommufd;
  __u32 out_devid;
};
#define VFIO_DEVICE_BIND_IOMMUFD _IO(VFIO_TYPE, VFIO_BASE + 18)

struct vfio_device_attach_iommufd_pt {
  __u32 argsz;
  __u32 flags;
  __u32 pt_id;
};
#define VFIO_DEVICE_ATTACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 19)

struct vfio_device_detach_iommufd_pt {
  __u32 argsz;
  __u32 flags;
};
#define VFIO_DEVICE_DETACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 20)
#endif  // VFIO_DEVICE_BIND_IOMMUFD

// Layouts the kernel checks by size: the first u32 of each struct is its size.
static_assert(sizeof(iommu_destroy) == 8);
static_assert(sizeof(iommu_ioas_alloc) == 12);
static_assert(sizeof(iommu_iova_range) == 16);
static_assert(sizeof(iommu_ioas_iova_ranges) == 32);
static_assert(offsetof(iommu_ioas_iova_ranges, allowed_iovas) == 16);
static_assert(sizeof(iommu_ioas_map) == 40);
static_assert(offsetof(iommu_ioas_map, user_va) == 16 && offsetof(iommu_ioas_map, iova) == 32);
static_assert(sizeof(iommu_ioas_copy) == 40);
static_assert(offsetof(iommu_ioas_copy, src_iova) == 32);
static_assert(sizeof(iommu_ioas_unmap) == 24);
static_assert(offsetof(iommu_ioas_unmap, length) == 16);
static_assert(sizeof(vfio_device_bind_iommufd) == 16);
static_assert(offsetof(vfio_device_attach_iommufd_pt, pt_id) == 8);
