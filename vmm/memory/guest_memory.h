// Guest RAM: one memfd (so peers such as vfio-user servers and vhost-user backends can map it),
// laid out as regions of guest-physical space. Every GPA -> HVA translation is bounds-checked and
// never crosses a region boundary.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

#include "base/address.h"
#include "base/fd.h"
#include "base/result.h"

namespace ioasis {

struct RamRegion {
  Gpa gpa;
  uint64_t size;
  Hva hva;
  uint64_t fd_offset;  // offset of this region inside the memfd
};

class GuestMemory {
 public:
  // RAM of `size` bytes placed per vmm/layout.h: below the 32-bit PCI hole first, the rest at 4
  // GiB.
  static Result<GuestMemory> create(uint64_t size);

  uint64_t size() const { return size_; }
  int fd() const { return fd_.get(); }
  const std::vector<RamRegion>& regions() const { return regions_; }
  // End of the highest RAM region (exclusive): where the 64-bit MMIO window may start.
  Gpa end() const;

  // The host address of [gpa, gpa+len), when that range lies inside one region.
  Result<Hva> hva(Gpa gpa, uint64_t len) const;
  // The guest-physical address of host address `hva`, when it is guest RAM.
  std::optional<Gpa> gpa_of(Hva hva) const;
  Result<void> read(Gpa gpa, std::span<uint8_t> out) const;
  Result<void> write(Gpa gpa, std::span<const uint8_t> in) const;

  template <typename T>
  Result<T> read_obj(Gpa gpa) const {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    IOASIS_TRY(read(gpa, std::span(reinterpret_cast<uint8_t*>(&value), sizeof(T))));
    return value;
  }
  template <typename T>
  Result<void> write_obj(Gpa gpa, const T& value) const {
    static_assert(std::is_trivially_copyable_v<T>);
    return write(gpa, std::span(reinterpret_cast<const uint8_t*>(&value), sizeof(T)));
  }

 private:
  GuestMemory(UniqueFd fd, MappedRegion map, uint64_t size, std::vector<RamRegion> regions)
      : fd_(std::move(fd)), map_(std::move(map)), size_(size), regions_(std::move(regions)) {}

  UniqueFd fd_;
  MappedRegion map_;
  uint64_t size_;
  std::vector<RamRegion> regions_;
};

}  // namespace ioasis
