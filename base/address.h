// Distinct address types: a guest-physical address, an I/O virtual address and a host virtual
// address are all 64-bit numbers, and mixing them up is the classic VMM bug. Each is its own type;
// converting between them takes a translation (GuestMemory, an Ioas), never a cast.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>

namespace ioasis {

template <typename Tag>
struct Address {
  uint64_t value = 0;

  constexpr Address() = default;
  constexpr explicit Address(uint64_t v) : value(v) {}

  constexpr Address operator+(uint64_t offset) const { return Address(value + offset); }
  constexpr Address operator-(uint64_t offset) const { return Address(value - offset); }
  constexpr uint64_t operator-(Address other) const { return value - other.value; }
  constexpr Address& operator+=(uint64_t offset) {
    value += offset;
    return *this;
  }
  constexpr auto operator<=>(const Address&) const = default;
};

struct GpaTag {};
struct IovaTag {};
struct HvaTag {};

using Gpa = Address<GpaTag>;
using Iova = Address<IovaTag>;

// A host virtual address inside this process. Carries the pointer conversion, which only host
// addresses may have.
struct Hva : Address<HvaTag> {
  using Address<HvaTag>::Address;
  constexpr Hva(Address<HvaTag> a) : Address<HvaTag>(a) {}  // NOLINT: arithmetic results
  static Hva of(const void* p) { return Hva(reinterpret_cast<uintptr_t>(p)); }
  template <typename T = uint8_t>
  T* ptr() const {
    return reinterpret_cast<T*>(static_cast<uintptr_t>(value));
  }
};

// True when [a, a+len) does not wrap past 2^64. Every guest-supplied range is checked with this
// before anything adds to it.
constexpr bool range_fits(uint64_t start, uint64_t len) {
  return len == 0 || start + (len - 1) >= start;
}

}  // namespace ioasis

template <typename Tag>
struct std::hash<ioasis::Address<Tag>> {
  size_t operator()(const ioasis::Address<Tag>& a) const { return std::hash<uint64_t>()(a.value); }
};
