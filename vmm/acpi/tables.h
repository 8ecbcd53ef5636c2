// ACPI table layouts as the guest reads them. Section numbers are ACPI 6.5 unless noted; all
// multi-byte fields are little-endian, which is also the host byte order on x86-64.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ioasis::acpi {

// System Description Table Header (5.2.6).
struct [[gnu::packed]] TableHeader {
  char signature[4];
  uint32_t length;  // whole table, header included
  uint8_t revision;
  uint8_t checksum;  // makes the byte sum of the whole table zero
  char oem_id[6];
  char oem_table_id[8];
  uint32_t oem_revision;
  char creator_id[4];
  uint32_t creator_revision;
};
static_assert(sizeof(TableHeader) == 36);
static_assert(offsetof(TableHeader, checksum) == 9);

// Root System Description Pointer, revision 2 (5.2.5.3). The first 20 bytes are the ACPI 1.0
// structure covered by `checksum`; `extended_checksum` covers all 36.
struct [[gnu::packed]] Rsdp {
  char signature[8];  // "RSD PTR "
  uint8_t checksum;
  char oem_id[6];
  uint8_t revision;
  uint32_t rsdt_address;
  uint32_t length;
  uint64_t xsdt_address;
  uint8_t extended_checksum;
  uint8_t reserved[3];
};
static_assert(sizeof(Rsdp) == 36);
static_assert(offsetof(Rsdp, length) == 20);
static_assert(offsetof(Rsdp, xsdt_address) == 24);

// Generic Address Structure (5.2.3.2).
struct [[gnu::packed]] GenericAddress {
  uint8_t address_space_id;  // 0 system memory, 1 system I/O
  uint8_t register_bit_width;
  uint8_t register_bit_offset;
  uint8_t access_size;  // 1 byte, 2 word, 3 dword, 4 qword
  uint64_t address;
};
static_assert(sizeof(GenericAddress) == 12);

inline constexpr uint8_t kAddressSpaceSystemIo = 1;
inline constexpr uint8_t kAccessSizeByte = 1;

// Fixed ACPI Description Table, revision 6 (5.2.9). On a hardware-reduced platform the
// legacy PM blocks stay zero; sleep goes through the sleep control and status registers.
struct [[gnu::packed]] Fadt {
  TableHeader header;
  uint32_t firmware_ctrl;
  uint32_t dsdt;
  uint8_t reserved0;
  uint8_t preferred_pm_profile;
  uint16_t sci_int;
  uint32_t smi_cmd;
  uint8_t acpi_enable;
  uint8_t acpi_disable;
  uint8_t s4bios_req;
  uint8_t pstate_cnt;
  uint32_t pm1a_evt_blk;
  uint32_t pm1b_evt_blk;
  uint32_t pm1a_cnt_blk;
  uint32_t pm1b_cnt_blk;
  uint32_t pm2_cnt_blk;
  uint32_t pm_tmr_blk;
  uint32_t gpe0_blk;
  uint32_t gpe1_blk;
  uint8_t pm1_evt_len;
  uint8_t pm1_cnt_len;
  uint8_t pm2_cnt_len;
  uint8_t pm_tmr_len;
  uint8_t gpe0_blk_len;
  uint8_t gpe1_blk_len;
  uint8_t gpe1_base;
  uint8_t cst_cnt;
  uint16_t p_lvl2_lat;
  uint16_t p_lvl3_lat;
  uint16_t flush_size;
  uint16_t flush_stride;
  uint8_t duty_offset;
  uint8_t duty_width;
  uint8_t day_alrm;
  uint8_t mon_alrm;
  uint8_t century;
  uint16_t iapc_boot_arch;
  uint8_t reserved1;
  uint32_t flags;
  GenericAddress reset_reg;
  uint8_t reset_value;
  uint16_t arm_boot_arch;
  uint8_t minor_version;  // bits 0-3 minor, bits 4-7 errata
  uint64_t x_firmware_ctrl;
  uint64_t x_dsdt;
  GenericAddress x_pm1a_evt_blk;
  GenericAddress x_pm1b_evt_blk;
  GenericAddress x_pm1a_cnt_blk;
  GenericAddress x_pm1b_cnt_blk;
  GenericAddress x_pm2_cnt_blk;
  GenericAddress x_pm_tmr_blk;
  GenericAddress x_gpe0_blk;
  GenericAddress x_gpe1_blk;
  GenericAddress sleep_control_reg;
  GenericAddress sleep_status_reg;
  uint64_t hypervisor_vendor_identity;
};
static_assert(sizeof(Fadt) == 276);
static_assert(offsetof(Fadt, flags) == 112);
static_assert(offsetof(Fadt, reset_reg) == 116);
static_assert(offsetof(Fadt, minor_version) == 131);
static_assert(offsetof(Fadt, x_dsdt) == 140);
static_assert(offsetof(Fadt, sleep_control_reg) == 244);
static_assert(offsetof(Fadt, hypervisor_vendor_identity) == 268);

// FADT fixed feature flags (5.2.9, Fixed Feature Flags).
inline constexpr uint32_t kFadtResetRegSup = 1u << 10;
inline constexpr uint32_t kFadtHwReducedAcpi = 1u << 20;

// Multiple APIC Description Table: fixed part (5.2.12), then interrupt controller
// structures, each starting with type and length.
struct [[gnu::packed]] MadtHeader {
  TableHeader header;
  uint32_t local_apic_address;
  uint32_t flags;
};
static_assert(sizeof(MadtHeader) == 44);

inline constexpr uint32_t kMadtPcatCompat = 1u << 0;  // 8259 PICs present, to be masked

// Processor Local APIC Structure (5.2.12.2).
struct [[gnu::packed]] MadtLocalApic {
  uint8_t type;  // 0
  uint8_t length;
  uint8_t processor_uid;
  uint8_t apic_id;
  uint32_t flags;  // bit 0 enabled
};
static_assert(sizeof(MadtLocalApic) == 8);

// I/O APIC Structure (5.2.12.3).
struct [[gnu::packed]] MadtIoApic {
  uint8_t type;  // 1
  uint8_t length;
  uint8_t io_apic_id;
  uint8_t reserved;
  uint32_t io_apic_address;
  uint32_t gsi_base;
};
static_assert(sizeof(MadtIoApic) == 12);

// Interrupt Source Override Structure (5.2.12.5).
struct [[gnu::packed]] MadtInterruptSourceOverride {
  uint8_t type;  // 2
  uint8_t length;
  uint8_t bus;  // 0, ISA
  uint8_t source;
  uint32_t gsi;
  uint16_t flags;  // MPS INTI flags (5.2.12.5)
};
static_assert(sizeof(MadtInterruptSourceOverride) == 10);

// MPS INTI flags: polarity in bits 0-1, trigger mode in bits 2-3; 0 means "bus default".
inline constexpr uint16_t kIntiActiveHigh = 0x1;
inline constexpr uint16_t kIntiLevelTriggered = 0x3 << 2;

// Local APIC NMI Structure (5.2.12.7).
struct [[gnu::packed]] MadtLocalApicNmi {
  uint8_t type;  // 4
  uint8_t length;
  uint8_t processor_uid;  // 0xff: all processors
  uint16_t flags;
  uint8_t lint;
};
static_assert(sizeof(MadtLocalApicNmi) == 6);

// PCI Express memory-mapped configuration space base address description table (PCI Firmware
// Specification 3.2, section 4.1.2).
struct [[gnu::packed]] McfgHeader {
  TableHeader header;
  uint64_t reserved;
};
static_assert(sizeof(McfgHeader) == 44);

struct [[gnu::packed]] McfgAllocation {
  uint64_t base_address;  // ECAM address of bus 0, even when start_bus is not 0
  uint16_t segment;
  uint8_t start_bus;
  uint8_t end_bus;
  uint32_t reserved;
};
static_assert(sizeof(McfgAllocation) == 16);

// Virtual I/O Translation table (the VIOT specification; signature reserved since ACPI 6.4, 5.2.6).
struct [[gnu::packed]] ViotHeader {
  TableHeader header;
  uint16_t node_count;
  uint16_t node_offset;  // from the start of the table to the first node
  uint8_t reserved[8];
};
static_assert(sizeof(ViotHeader) == 48);

inline constexpr uint8_t kViotNodePciRange = 1;
inline constexpr uint8_t kViotNodeVirtioIommuPci = 3;

// PCI range node: endpoints [bdf_start, bdf_end] of segments [segment_start, segment_end]
// translate through `output_node`, with endpoint IDs counting up from `endpoint_start`.
struct [[gnu::packed]] ViotPciRange {
  uint8_t type;  // 1
  uint8_t reserved0;
  uint16_t length;
  uint32_t endpoint_start;
  uint16_t segment_start;
  uint16_t segment_end;
  uint16_t bdf_start;
  uint16_t bdf_end;
  uint16_t output_node;  // offset of the IOMMU node from the start of the table
  uint8_t reserved1[6];
};
static_assert(sizeof(ViotPciRange) == 24);
static_assert(offsetof(ViotPciRange, output_node) == 16);

// virtio-iommu based on virtio-pci node: the IOMMU is the PCI function segment:bdf.
struct [[gnu::packed]] ViotVirtioIommuPci {
  uint8_t type;  // 3
  uint8_t reserved0;
  uint16_t length;
  uint16_t segment;
  uint16_t bdf;
  uint8_t reserved1[8];
};
static_assert(sizeof(ViotVirtioIommuPci) == 16);

}  // namespace ioasis::acpi
