#include "vmm/acpi/acpi.h"

#include <fmt/format.h>

#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "vmm/acpi/dsdt.h"
#include "vmm/acpi/system_tables.h"

namespace ioasis::acpi {
namespace {

constexpr uint32_t kMaxCpus = 255;  // xAPIC IDs 0-254; 0xff is the broadcast ID
constexpr uint64_t k4GiB = uint64_t{1} << 32;
constexpr uint64_t kPortSpace = 0x10000;
constexpr uint64_t kTableAlign = 16;

Error invalid(const std::string& what) {
  return Error(Errc::kInvalidArgument, "ACPI config: " + what);
}

bool window_below(const AddressWindow& w, uint64_t limit) {
  return range_fits(w.base, w.size) && w.base < limit && w.size <= limit - w.base;
}

Result<void> validate_pci(const AcpiConfig& c) {
  if (c.pci_bus_start > c.pci_bus_end) return invalid("PCI bus range runs backwards");
  uint64_t ecam_end = (uint64_t{c.pci_bus_end} + 1) << 20;
  if (c.ecam_base % (1 << 20) != 0 || !range_fits(c.ecam_base, ecam_end)) {
    return invalid(fmt::format("ECAM base {:#x} is not 1 MiB aligned or overflows", c.ecam_base));
  }
  if (!window_below(c.pci_mmio32, k4GiB)) return invalid("32-bit PCI MMIO window ends above 4 GiB");
  if (!range_fits(c.pci_mmio64.base, c.pci_mmio64.size)) {
    return invalid("64-bit PCI MMIO window overflows");
  }
  if (!window_below(c.pci_io, kPortSpace)) return invalid("PCI I/O window ends above port 0xffff");
  return ok();
}

Result<void> validate_viot(const ViotConfig& v) {
  // node_count is 16 bits and counts the IOMMU node too.
  if (v.endpoints.size() >= 0xffff) return invalid("too many VIOT endpoint ranges");
  for (const auto& r : v.endpoints) {
    if (r.bdf_start > r.bdf_end) {
      return invalid(fmt::format("VIOT endpoint range {:#06x}-{:#06x} runs backwards", r.bdf_start,
                                 r.bdf_end));
    }
    if (r.segment == v.iommu.segment && r.bdf_start <= v.iommu.bdf && v.iommu.bdf <= r.bdf_end) {
      return invalid("the virtio-iommu cannot translate its own DMA");
    }
  }
  return ok();
}

Result<void> validate(const AcpiConfig& c) {
  if (c.num_cpus == 0 || c.num_cpus > kMaxCpus) {
    return invalid(fmt::format("{} vCPUs; between 1 and {} are supported", c.num_cpus, kMaxCpus));
  }
  IOASIS_TRY(validate_pci(c));
  if (c.ioapic_address >= k4GiB) return invalid("IOAPIC address above 4 GiB");
  if (c.com1_irq >= 16) return invalid("COM1 IRQ must be an ISA IRQ (0-15)");
  if (uint32_t{c.com1_port} + 8 > kPortSpace) return invalid("COM1 port range ends above 0xffff");
  if (c.viot) IOASIS_TRY(validate_viot(*c.viot));
  return ok();
}

// Lays tables out one after another from `base`, each 16-byte aligned.
class Blob {
 public:
  explicit Blob(Gpa base) : base_(base) {}

  Gpa place(std::string_view signature, std::span<const uint8_t> table) {
    bytes_.resize((bytes_.size() + kTableAlign - 1) / kTableAlign * kTableAlign);
    Gpa at = base_ + bytes_.size();
    bytes_.insert(bytes_.end(), table.begin(), table.end());
    locations_.push_back({std::string(signature), at, static_cast<uint32_t>(table.size())});
    return at;
  }

  AcpiTables finish(Gpa rsdp) && {
    return AcpiTables{base_, rsdp, std::move(bytes_), std::move(locations_)};
  }

  size_t size() const { return bytes_.size(); }

 private:
  Gpa base_;
  std::vector<uint8_t> bytes_;
  std::vector<TableLocation> locations_;
};

}  // namespace

Result<AcpiTables> build_acpi_tables(const AcpiConfig& config, Gpa base, uint64_t max_size) {
  if (base.value % kTableAlign != 0) {
    return invalid(fmt::format("table base {:#x} is not 16-byte aligned", base.value));
  }
  IOASIS_TRY(validate(config));
  IOASIS_ASSIGN_OR_RETURN(std::vector<uint8_t> dsdt, build_dsdt(config));

  // The RSDP goes first so that it sits at `base`; the XSDT, which points at everything else,
  // goes last and the RSDP is patched to point at it.
  Blob blob(base);
  Gpa rsdp_gpa = blob.place("RSD PTR ", std::vector<uint8_t>(sizeof(Rsdp)));
  Gpa dsdt_gpa = blob.place("DSDT", dsdt);
  std::vector<Gpa> xsdt_entries;
  xsdt_entries.push_back(blob.place("FACP", build_fadt(config, dsdt_gpa)));
  xsdt_entries.push_back(blob.place("APIC", build_madt(config)));
  xsdt_entries.push_back(blob.place("MCFG", build_mcfg(config)));
  if (config.viot) xsdt_entries.push_back(blob.place("VIOT", build_viot(*config.viot)));
  Gpa xsdt_gpa = blob.place("XSDT", build_xsdt(xsdt_entries));

  if (blob.size() > max_size) {
    return Error(Errc::kResourceExhausted,
                 fmt::format("ACPI tables take {} bytes, more than the {} reserved for them",
                             blob.size(), max_size));
  }
  if (!range_fits(base.value, blob.size())) return invalid("tables would wrap the address space");
  AcpiTables tables = std::move(blob).finish(rsdp_gpa);
  Rsdp rsdp = build_rsdp(xsdt_gpa);
  std::memcpy(tables.bytes.data() + (rsdp_gpa - base), &rsdp, sizeof(rsdp));
  return tables;
}

}  // namespace ioasis::acpi
