#include "vmm/acpi/sdt.h"

#include <algorithm>

namespace ioasis::acpi {

uint8_t checksum_of(std::span<const uint8_t> bytes) {
  uint8_t sum = 0;
  for (uint8_t b : bytes) sum = static_cast<uint8_t>(sum + b);
  return static_cast<uint8_t>(-sum);
}

TableHeader make_header(std::string_view signature, uint8_t revision) {
  TableHeader h{};
  std::memcpy(h.signature, signature.data(), std::min(signature.size(), sizeof(h.signature)));
  h.revision = revision;
  std::memcpy(h.oem_id, kOemId, sizeof(h.oem_id));
  std::memcpy(h.oem_table_id, kOemTableId, sizeof(h.oem_table_id));
  h.oem_revision = kOemRevision;
  std::memcpy(h.creator_id, kCreatorId, sizeof(h.creator_id));
  h.creator_revision = kCreatorRevision;
  return h;
}

void seal_table(std::vector<uint8_t>& table) {
  auto length = static_cast<uint32_t>(table.size());
  std::memcpy(table.data() + offsetof(TableHeader, length), &length, sizeof(length));
  table[offsetof(TableHeader, checksum)] = 0;
  table[offsetof(TableHeader, checksum)] = checksum_of(table);
}

}  // namespace ioasis::acpi
