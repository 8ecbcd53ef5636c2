// A small builder for AML, the bytecode of ACPI definition blocks (ACPI 6.5 chapter 20).
//
// Each function returns one encoded term; terms compose by value, so a DSDT reads like the ASL it
// stands for:
//
//   scope("\\_SB", {device("COM1", {name("_HID", eisa_id("PNP0501")), name("_UID", integer(0))})})
//
// Builders never fail outright: a malformed name or a body too large for a PkgLength marks the
// term invalid, the mark propagates to every enclosing term, and the caller checks `valid()` once
// on the finished block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace ioasis::acpi::aml {

class Aml {
 public:
  Aml() = default;
  explicit Aml(std::vector<uint8_t> bytes, bool valid = true)
      : bytes_(std::move(bytes)), valid_(valid) {}

  const std::vector<uint8_t>& bytes() const { return bytes_; }
  bool valid() const { return valid_; }

  void append(const Aml& other);
  void append_byte(uint8_t b) { bytes_.push_back(b); }
  void append_bytes(std::span<const uint8_t> b) { bytes_.insert(bytes_.end(), b.begin(), b.end()); }
  void invalidate() { valid_ = false; }

 private:
  std::vector<uint8_t> bytes_;
  bool valid_ = true;
};

// PkgLength (20.2.4) for a body of `body_length` bytes. The encoded value counts the PkgLength
// bytes themselves; it takes 1 to 4 bytes and cannot exceed 2^28 - 1. Empty when too large.
std::optional<std::vector<uint8_t>> encode_pkg_length(size_t body_length);

// NameString (20.2.2): "\\_SB.PCI0", "_HID", "COM1". Segments shorter than four characters are
// padded with '_' as ASL does; only the root prefix is supported, not '^'.
Aml name_string(std::string_view path);

// Integer (20.2.3) in its smallest encoding: ZeroOp, OneOp, OnesOp or a Byte/Word/DWord/QWord
// constant.
Aml integer(uint64_t value);

// String (20.2.3): ASCII, NUL-terminated. Non-ASCII or embedded NUL characters are invalid.
Aml string(std::string_view ascii);

// EISAID("PNP0A08"): three upper-case letters and four hex digits compressed into a DWord
// (ACPI 6.5 section 6.1.5, _HID).
Aml eisa_id(std::string_view id);

// DefBuffer (20.2.5.4) holding `data`, with its size as the BufferSize term.
Aml buffer(std::span<const uint8_t> data);

// DefPackage (20.2.5.4) of up to 255 elements.
Aml package(const std::vector<Aml>& elements);

// DefName: Name(name, value) (20.2.5.1).
Aml name(std::string_view name, const Aml& value);

// DefScope: Scope(path) { terms } (20.2.5.1).
Aml scope(std::string_view path, const std::vector<Aml>& terms);

// DefDevice: Device(name) { terms } (20.2.5.2).
Aml device(std::string_view name, const std::vector<Aml>& terms);

// DefMethod: Method(name, args, Serialized|NotSerialized) { terms } (20.2.5.2). Sync level 0.
Aml method(std::string_view name, uint8_t arg_count, bool serialized,
           const std::vector<Aml>& terms);

// DefReturn: Return(value) (20.2.5.3).
Aml return_value(const Aml& value);

// The body of a definition block: the terms concatenated.
Aml term_list(const std::vector<Aml>& terms);

// Notify(path, value) (20.2.5.3): tells the OS that the object at `path` has an event.
Aml notify(std::string_view path, uint64_t value);

}  // namespace ioasis::acpi::aml
