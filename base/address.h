// Distinct address types: a guest-physical address, an I/O virtual address and a host virtual
// address are all 64-bit numbers, and mixing them up is the classic VMM bug. Each is its own type;
// converting between them takes a translation (GuestMemory, an Ioas), never a cast.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <type_traits>

namespace ioasis {

struct GpaTag;
struct IovaTag;
struct HvaTag;

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

  // Only host virtual addresses convert to pointers.
  static Address of(const void* p) requires std::is_same_v<Tag, struct HvaTag> {
    return Address(reinterpret_cast<uintptr_t>(p));
  }
  template <typename T = uint8_t>
  T* ptr() const requires std::is_same_v<Tag, struct HvaTag> {
    return reinterpret_cast<T*>(static_cast<uintptr_t>(value));
  }
};

struct GpaTag {};
struct IovaTag {};
struct HvaTag {};

using Gpa = Address<GpaTag>;
using Iova = Address<IovaTag>;

using Hva = Address<HvaTag>;

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
