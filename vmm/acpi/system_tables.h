// Builders for the fixed-layout tables. Each returns the complete table with length and checksum
// set; `config` must already be validated.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/address.h"
#include "vmm/acpi/acpi.h"
#include "vmm/acpi/tables.h"

namespace ioasis::acpi {

std::vector<uint8_t> build_fadt(const AcpiConfig& config, Gpa dsdt);
std::vector<uint8_t> build_madt(const AcpiConfig& config);
std::vector<uint8_t> build_mcfg(const AcpiConfig& config);
std::vector<uint8_t> build_viot(const ViotConfig& viot);
std::vector<uint8_t> build_xsdt(std::span<const Gpa> tables);
Rsdp build_rsdp(Gpa xsdt);

}  // namespace ioasis::acpi
