// What a device uses to reach memory: translate an IOVA range into host memory, or copy into and
// out of buffers through it. Each view has a small direct-mapped IOTLB whose hit path takes no
// lock; entries are validated by the address space's invalidation epoch, which every unmap bumps
// before it returns, and by the device's attachment generation, which attach/detach/replace bump.
//
// A failed translation is a DmaFault carrying the IOVA, the access and the reason, the material
// the virtio-iommu turns into a fault event.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <variant>

#include "base/result.h"
#include "iommu/types.h"

namespace ioasis::iommu {

namespace internal {
struct DeviceSlot;
struct IoasTable;
}  // namespace internal

enum class Access : uint8_t {
  kRead,   // the device reads memory (driver-to-device buffers)
  kWrite,  // the device writes memory
};

enum class FaultReason : uint8_t {
  kUnmapped,     // no mapping covers the IOVA
  kPermission,   // a mapping covers it but forbids this access
  kNotAttached,  // the device has no address space
  // The device reported a failed DMA without saying where or why (VFIO's error IRQ): `iova` and
  // `access` carry nothing.
  kUnknown,
};

struct DmaFault {
  Iova iova;
  Access access = Access::kRead;
  FaultReason reason = FaultReason::kUnmapped;

  std::string to_string() const;
  Error to_error() const;
};

template <typename T>
class [[nodiscard]] DmaResult {
 public:
  DmaResult(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit
  DmaResult(DmaFault fault) : v_(std::in_place_index<1>, fault) {}      // NOLINT: implicit
  bool ok() const { return v_.index() == 0; }
  const T& value() const { return std::get<0>(v_); }
  const T& operator*() const { return value(); }
  const T* operator->() const { return &value(); }
  const DmaFault& fault() const { return std::get<1>(v_); }

 private:
  std::variant<T, DmaFault> v_;
};

template <>
class [[nodiscard]] DmaResult<void> {
 public:
  DmaResult() = default;
  DmaResult(DmaFault fault) : fault_(fault), ok_(false) {}  // NOLINT: implicit
  bool ok() const { return ok_; }
  const DmaFault& fault() const { return fault_; }

 private:
  DmaFault fault_;
  bool ok_ = true;
};

// Host memory behind the start of an IOVA range. Shorter than asked when the range crosses into
// another mapping.
struct HostSpan {
  Hva hva;
  uint64_t length = 0;
};

class DmaView {
 public:
  explicit DmaView(std::shared_ptr<internal::DeviceSlot> slot);
  ~DmaView();
  DmaView(const DmaView&) = delete;
  DmaView& operator=(const DmaView&) = delete;

  // `length` must be at least 1.
  DmaResult<HostSpan> translate(Iova iova, uint64_t length, Access access);
  DmaResult<void> read(Iova iova, void* dst, uint64_t length);
  DmaResult<void> write(Iova iova, const void* src, uint64_t length);

  // The IOTLB is on by default; off makes every translation walk the address space's table.
  void set_iotlb_enabled(bool enabled);
  uint64_t iotlb_hits() const { return hits_; }
  uint64_t iotlb_misses() const { return misses_; }

 private:
  struct Entry {
    uint64_t page = UINT64_MAX;  // IOVA >> 12 this entry answers for
    uint64_t epoch = 0;
    uint64_t first = 0;  // the mapping it came from
    uint64_t last = 0;
    uint64_t hva_first = 0;
    Perm perm = Perm::kNone;
  };
  static constexpr size_t kEntries = 256;
  // A multiplicative hash, so that strided buffers (every other page, every 1 MiB) spread over
  // the whole cache instead of fighting for a few slots.
  static size_t slot_of(uint64_t page) { return (page * 0x9e3779b97f4a7c15ull) >> 56; }

  void refresh();
  DmaResult<HostSpan> walk(uint64_t iova, uint64_t length, Access access);
  void flush();

  std::shared_ptr<internal::DeviceSlot> slot_;
  std::shared_ptr<internal::IoasTable> table_;
  uint64_t generation_ = 0;
  bool iotlb_enabled_ = true;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
  std::array<Entry, kEntries> iotlb_{};
};

}  // namespace ioasis::iommu
