// Helpers shared by the table builders: the common header and the final length and checksum.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

#include "vmm/acpi/tables.h"

namespace ioasis::acpi {

inline constexpr char kOemId[] = "IOASIS";         // 6 characters
inline constexpr char kOemTableId[] = "IOASISVM";  // 8 characters
inline constexpr char kCreatorId[] = "IOAS";       // 4 characters
inline constexpr uint32_t kOemRevision = 1;
inline constexpr uint32_t kCreatorRevision = 1;

// The value that makes the byte sum of `bytes` (with this value added) zero.
uint8_t checksum_of(std::span<const uint8_t> bytes);

// A header with signature, revision and the ioasis OEM fields; length and checksum are filled by
// seal_table.
TableHeader make_header(std::string_view signature, uint8_t revision);

template <typename T>
void append_struct(std::vector<uint8_t>& out, const T& value) {
  size_t at = out.size();
  out.resize(at + sizeof(T));
  std::memcpy(out.data() + at, &value, sizeof(T));
}

// Writes the final length into the header and sets the checksum over the whole table. Call last.
void seal_table(std::vector<uint8_t>& table);

}  // namespace ioasis::acpi
