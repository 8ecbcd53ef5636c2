// The Differentiated System Description Table: the AML namespace describing the PCI host bridge
// and its INTx routing, the UART, the power button and the S5 sleep state.
#pragma once

#include <cstdint>
#include <vector>

#include "base/result.h"
#include "vmm/acpi/acpi.h"

namespace ioasis::acpi {

// The whole DSDT, header and checksum included. `config` must already be validated.
Result<std::vector<uint8_t>> build_dsdt(const AcpiConfig& config);

}  // namespace ioasis::acpi
