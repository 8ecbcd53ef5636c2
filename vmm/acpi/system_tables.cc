#include "vmm/acpi/system_tables.h"

#include <cstring>

#include "vmm/acpi/sdt.h"

namespace ioasis::acpi {
namespace {

// FADT revision 6 with minor version 5: the ACPI 6.5 layout.
constexpr uint8_t kFadtRevision = 6;
constexpr uint8_t kFadtMinorVersion = 5;
constexpr uint8_t kMadtRevision = 5;
constexpr uint8_t kMcfgRevision = 1;
constexpr uint8_t kViotRevision = 0;
constexpr uint8_t kXsdtRevision = 1;
constexpr uint8_t kRsdpRevision = 2;  // ACPI 2.0 and later: has the XSDT address

// Reset control port 0xcf9: RST_CPU (bit 2) starts the reset, SYS_RST (bit 1) makes it a hard one.
constexpr uint8_t kResetValue = 0x06;

// MADT structure types (5.2.12).
constexpr uint8_t kMadtTypeLocalApic = 0;
constexpr uint8_t kMadtTypeIoApic = 1;
constexpr uint8_t kMadtTypeInterruptOverride = 2;
constexpr uint8_t kMadtTypeLocalApicNmi = 4;
constexpr uint32_t kLocalApicEnabled = 1u << 0;
constexpr uint8_t kAllProcessors = 0xff;
constexpr uint8_t kLint1 = 1;

GenericAddress io_port_byte(uint16_t port) {
  GenericAddress gas{};
  gas.address_space_id = kAddressSpaceSystemIo;
  gas.register_bit_width = 8;
  gas.access_size = kAccessSizeByte;
  gas.address = port;
  return gas;
}

MadtInterruptSourceOverride isa_override(uint8_t irq, uint32_t gsi, uint16_t flags) {
  MadtInterruptSourceOverride o{};
  o.type = kMadtTypeInterruptOverride;
  o.length = sizeof(o);
  o.bus = 0;
  o.source = irq;
  o.gsi = gsi;
  o.flags = flags;
  return o;
}

}  // namespace

std::vector<uint8_t> build_fadt(const AcpiConfig& config, Gpa dsdt) {
  Fadt f{};
  f.header = make_header("FACP", kFadtRevision);
  f.minor_version = kFadtMinorVersion;
  // Only the 64-bit X_DSDT is set; OSPM ignores the 32-bit DSDT field when X_DSDT is usable, so
  // filling both would only add a second source of truth.
  f.x_dsdt = dsdt.value;
  f.flags = kFadtHwReducedAcpi | kFadtResetRegSup;
  f.reset_reg = io_port_byte(config.reset_port);
  f.reset_value = kResetValue;
  // Hardware-reduced sleep (4.8.3.7): one port takes SLP_TYP and SLP_EN writes and reads back
  // WAK_STS.
  f.sleep_control_reg = io_port_byte(config.sleep_control_port);
  f.sleep_status_reg = io_port_byte(config.sleep_control_port);
  std::memcpy(&f.hypervisor_vendor_identity, "IOASISVM", sizeof(f.hypervisor_vendor_identity));
  std::vector<uint8_t> table;
  append_struct(table, f);
  seal_table(table);
  return table;
}

std::vector<uint8_t> build_madt(const AcpiConfig& config) {
  MadtHeader m{};
  m.header = make_header("APIC", kMadtRevision);
  m.local_apic_address = static_cast<uint32_t>(layout::kLapicStart);
  m.flags = kMadtPcatCompat;
  std::vector<uint8_t> table;
  append_struct(table, m);
  for (uint32_t cpu = 0; cpu < config.num_cpus; ++cpu) {
    MadtLocalApic lapic{};
    lapic.type = kMadtTypeLocalApic;
    lapic.length = sizeof(lapic);
    lapic.processor_uid = static_cast<uint8_t>(cpu);
    lapic.apic_id = static_cast<uint8_t>(cpu);
    lapic.flags = kLocalApicEnabled;
    append_struct(table, lapic);
  }
  MadtIoApic ioapic{};
  ioapic.type = kMadtTypeIoApic;
  ioapic.length = sizeof(ioapic);
  ioapic.io_apic_id = config.ioapic_id;
  ioapic.io_apic_address = static_cast<uint32_t>(config.ioapic_address);
  ioapic.gsi_base = config.ioapic_gsi_base;
  append_struct(table, ioapic);
  // The PIT's IRQ 0 arrives on IOAPIC pin 2, as on every PC; IRQ 9 (the SCI on PC firmware) is
  // level-triggered, active high.
  append_struct(table, isa_override(0, config.ioapic_gsi_base + 2, 0));
  append_struct(table,
                isa_override(9, config.ioapic_gsi_base + 9, kIntiActiveHigh | kIntiLevelTriggered));
  MadtLocalApicNmi nmi{};
  nmi.type = kMadtTypeLocalApicNmi;
  nmi.length = sizeof(nmi);
  nmi.processor_uid = kAllProcessors;
  nmi.lint = kLint1;
  append_struct(table, nmi);
  seal_table(table);
  return table;
}

std::vector<uint8_t> build_mcfg(const AcpiConfig& config) {
  McfgHeader m{};
  m.header = make_header("MCFG", kMcfgRevision);
  McfgAllocation a{};
  a.base_address = config.ecam_base;
  a.segment = 0;
  a.start_bus = config.pci_bus_start;
  a.end_bus = config.pci_bus_end;
  std::vector<uint8_t> table;
  append_struct(table, m);
  append_struct(table, a);
  seal_table(table);
  return table;
}

std::vector<uint8_t> build_viot(const ViotConfig& viot) {
  ViotHeader h{};
  h.header = make_header("VIOT", kViotRevision);
  h.node_count = static_cast<uint16_t>(1 + viot.endpoints.size());
  h.node_offset = sizeof(ViotHeader);
  std::vector<uint8_t> table;
  append_struct(table, h);
  const auto iommu_offset = static_cast<uint16_t>(table.size());
  ViotVirtioIommuPci iommu{};
  iommu.type = kViotNodeVirtioIommuPci;
  iommu.length = sizeof(iommu);
  iommu.segment = viot.iommu.segment;
  iommu.bdf = viot.iommu.bdf;
  append_struct(table, iommu);
  for (const auto& range : viot.endpoints) {
    ViotPciRange r{};
    r.type = kViotNodePciRange;
    r.length = sizeof(r);
    r.endpoint_start = range.bdf_start;
    r.segment_start = range.segment;
    r.segment_end = range.segment;
    r.bdf_start = range.bdf_start;
    r.bdf_end = range.bdf_end;
    r.output_node = iommu_offset;
    append_struct(table, r);
  }
  seal_table(table);
  return table;
}

std::vector<uint8_t> build_xsdt(std::span<const Gpa> tables) {
  std::vector<uint8_t> table;
  append_struct(table, make_header("XSDT", kXsdtRevision));
  for (Gpa gpa : tables) append_struct(table, gpa.value);
  seal_table(table);
  return table;
}

Rsdp build_rsdp(Gpa xsdt) {
  Rsdp r{};
  std::memcpy(r.signature, "RSD PTR ", sizeof(r.signature));
  std::memcpy(r.oem_id, kOemId, sizeof(r.oem_id));
  r.revision = kRsdpRevision;
  r.length = sizeof(Rsdp);
  r.xsdt_address = xsdt.value;
  const auto* bytes = reinterpret_cast<const uint8_t*>(&r);
  r.checksum = checksum_of({bytes, offsetof(Rsdp, length)});
  r.extended_checksum = checksum_of({bytes, sizeof(Rsdp)});
  return r;
}

}  // namespace ioasis::acpi
