#include "vmm/acpi/acpi.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>

#include "vmm/acpi/tables.h"

namespace ioasis::acpi {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

AcpiConfig test_config() {
  AcpiConfig c;
  c.num_cpus = 4;
  c.pci_mmio64 = {0x10000000000, 0x4000000000};
  return c;
}

AcpiConfig viot_config() {
  AcpiConfig c = test_config();
  c.viot = ViotConfig{{0, 0x0008}, {{0, 0x0000, 0x0007}, {0, 0x0010, 0x00ff}}};
  return c;
}

uint8_t byte_sum(const uint8_t* p, size_t n) {
  uint8_t s = 0;
  for (size_t i = 0; i < n; ++i) s = static_cast<uint8_t>(s + p[i]);
  return s;
}

template <typename T>
T read_at(const AcpiTables& t, Gpa gpa) {
  EXPECT_GE(gpa, t.base);
  EXPECT_LE(gpa - t.base + sizeof(T), t.bytes.size());
  T v;
  std::memcpy(&v, t.bytes.data() + (gpa - t.base), sizeof(T));
  return v;
}

// Follows RSDP -> XSDT -> tables the way a guest does, checking every pointer lands inside the
// blob on a table whose length fits and whose bytes sum to zero.
std::map<std::string, Gpa> walk(const AcpiTables& t) {
  std::map<std::string, Gpa> found;
  auto rsdp = read_at<Rsdp>(t, t.rsdp);
  EXPECT_EQ(std::string(rsdp.signature, 8), "RSD PTR ");
  const uint8_t* rsdp_bytes = t.bytes.data() + (t.rsdp - t.base);
  EXPECT_EQ(byte_sum(rsdp_bytes, 20), 0) << "ACPI 1.0 checksum";
  EXPECT_EQ(byte_sum(rsdp_bytes, rsdp.length), 0) << "extended checksum";
  auto check_table = [&](Gpa gpa) {
    auto h = read_at<TableHeader>(t, gpa);
    std::string sig(h.signature, 4);
    EXPECT_LE(gpa - t.base + h.length, t.bytes.size()) << sig;
    EXPECT_EQ(byte_sum(t.bytes.data() + (gpa - t.base), h.length), 0) << sig << " checksum";
    EXPECT_FALSE(found.contains(sig)) << sig << " appears twice";
    found[sig] = gpa;
    return h;
  };
  Gpa xsdt(rsdp.xsdt_address);
  auto xsdt_header = check_table(xsdt);
  EXPECT_EQ(std::string(xsdt_header.signature, 4), "XSDT");
  size_t entries = (xsdt_header.length - sizeof(TableHeader)) / 8;
  for (size_t i = 0; i < entries; ++i) {
    Gpa entry(read_at<uint64_t>(t, xsdt + sizeof(TableHeader) + 8 * i));
    EXPECT_EQ(entry.value % 8, 0u);
    check_table(entry);
  }
  if (found.contains("FACP")) {
    auto fadt = read_at<Fadt>(t, found["FACP"]);
    check_table(Gpa(fadt.x_dsdt));
  }
  return found;
}

TEST(AcpiTables, RsdpSitsAtBaseAndEveryTableChecksums) {
  auto t = build_acpi_tables(test_config());
  ASSERT_TRUE(t.ok()) << t.error().message();
  EXPECT_EQ(t->base, Gpa(layout::kAcpiStart));
  EXPECT_EQ(t->rsdp, t->base);
  auto found = walk(*t);
  EXPECT_EQ(found.size(), 5u);  // XSDT, FACP, APIC, MCFG, DSDT
  for (const char* sig : {"XSDT", "FACP", "APIC", "MCFG", "DSDT"}) EXPECT_TRUE(found.contains(sig));
  EXPECT_FALSE(found.contains("VIOT"));
  EXPECT_LE(t->bytes.size(), layout::kAcpiSize);
}

TEST(AcpiTables, ViotIsListedOnlyWhenConfigured) {
  auto t = build_acpi_tables(viot_config());
  ASSERT_TRUE(t.ok()) << t.error().message();
  auto found = walk(*t);
  ASSERT_TRUE(found.contains("VIOT"));
  EXPECT_EQ(found.size(), 6u);
}

TEST(AcpiTables, LocationsMatchTheBlob) {
  auto t = build_acpi_tables(viot_config(), Gpa(0x100000), 0x10000);
  ASSERT_TRUE(t.ok()) << t.error().message();
  auto found = walk(*t);
  for (const auto& loc : t->tables) {
    if (loc.signature == "RSD PTR ") {
      EXPECT_EQ(loc.gpa, t->rsdp);
      continue;
    }
    ASSERT_TRUE(found.contains(loc.signature)) << loc.signature;
    EXPECT_EQ(found[loc.signature], loc.gpa);
    EXPECT_EQ(read_at<TableHeader>(*t, loc.gpa).length, loc.length);
  }
}

TEST(AcpiTables, FadtIsHardwareReducedWithSleepRegisters) {
  auto t = build_acpi_tables(test_config());
  ASSERT_TRUE(t.ok());
  auto fadt = read_at<Fadt>(*t, walk(*t)["FACP"]);
  EXPECT_EQ(fadt.header.length, sizeof(Fadt));
  EXPECT_EQ(fadt.header.revision, 6);
  EXPECT_EQ(fadt.minor_version & 0x0f, 5);
  EXPECT_TRUE(fadt.flags & kFadtHwReducedAcpi);
  EXPECT_TRUE(fadt.flags & kFadtResetRegSup);
  EXPECT_EQ(fadt.sleep_control_reg.address_space_id, kAddressSpaceSystemIo);
  EXPECT_EQ(fadt.sleep_control_reg.address, layout::kPortSleepControl);
  EXPECT_EQ(fadt.sleep_status_reg.address, layout::kPortSleepControl);
  EXPECT_EQ(fadt.reset_reg.address, layout::kPortResetControl);
  EXPECT_EQ(fadt.reset_value, 0x06);
  EXPECT_EQ(fadt.pm1a_evt_blk, 0u);
  EXPECT_EQ(fadt.pm1a_cnt_blk, 0u);
  EXPECT_EQ(fadt.x_pm1a_cnt_blk.address, 0u);
}

TEST(AcpiTables, MadtListsEachCpuTheIoapicAndOverrides) {
  AcpiConfig c = test_config();
  c.num_cpus = 3;
  c.ioapic_id = 7;
  auto t = build_acpi_tables(c);
  ASSERT_TRUE(t.ok());
  Gpa madt = walk(*t)["APIC"];
  auto header = read_at<MadtHeader>(*t, madt);
  EXPECT_EQ(header.local_apic_address, 0xfee00000u);
  EXPECT_EQ(header.flags & kMadtPcatCompat, kMadtPcatCompat);
  std::vector<uint8_t> lapic_ids;
  std::map<uint8_t, MadtInterruptSourceOverride> overrides;
  int ioapics = 0;
  int nmis = 0;
  for (uint32_t off = sizeof(MadtHeader); off < header.header.length;) {
    uint8_t type = t->bytes[madt - t->base + off];
    uint8_t len = t->bytes[madt - t->base + off + 1];
    ASSERT_GE(len, 2);
    if (type == 0) {
      auto l = read_at<MadtLocalApic>(*t, madt + off);
      EXPECT_EQ(l.flags & 1, 1u);
      lapic_ids.push_back(l.apic_id);
    } else if (type == 1) {
      auto io = read_at<MadtIoApic>(*t, madt + off);
      EXPECT_EQ(io.io_apic_id, 7);
      EXPECT_EQ(io.io_apic_address, layout::kIoapicStart);
      ++ioapics;
    } else if (type == 2) {
      auto o = read_at<MadtInterruptSourceOverride>(*t, madt + off);
      overrides[o.source] = o;
    } else if (type == 4) {
      EXPECT_EQ(read_at<MadtLocalApicNmi>(*t, madt + off).lint, 1);
      ++nmis;
    }
    off += len;
  }
  EXPECT_THAT(lapic_ids, ElementsAre(0, 1, 2));
  EXPECT_EQ(ioapics, 1);
  EXPECT_EQ(nmis, 1);
  ASSERT_TRUE(overrides.contains(0));
  EXPECT_EQ(overrides[0].gsi, 2u);
  ASSERT_TRUE(overrides.contains(9));
  EXPECT_EQ(overrides[9].flags, kIntiActiveHigh | kIntiLevelTriggered);
}

TEST(AcpiTables, McfgDescribesTheEcam) {
  AcpiConfig c = test_config();
  c.ecam_base = 0xb0000000;
  c.pci_bus_end = 0x3f;
  auto t = build_acpi_tables(c);
  ASSERT_TRUE(t.ok());
  Gpa mcfg = walk(*t)["MCFG"];
  EXPECT_EQ(read_at<TableHeader>(*t, mcfg).length, sizeof(McfgHeader) + sizeof(McfgAllocation));
  auto a = read_at<McfgAllocation>(*t, mcfg + sizeof(McfgHeader));
  EXPECT_EQ(a.base_address, 0xb0000000u);
  EXPECT_EQ(a.segment, 0);
  EXPECT_EQ(a.start_bus, 0);
  EXPECT_EQ(a.end_bus, 0x3f);
}

TEST(AcpiTables, ViotRangesPointAtTheIommuNode) {
  auto t = build_acpi_tables(viot_config());
  ASSERT_TRUE(t.ok());
  Gpa viot = walk(*t)["VIOT"];
  auto h = read_at<ViotHeader>(*t, viot);
  EXPECT_EQ(h.node_count, 3);
  EXPECT_EQ(h.header.length, sizeof(ViotHeader) + 16 + 2 * 24);
  auto iommu = read_at<ViotVirtioIommuPci>(*t, viot + h.node_offset);
  EXPECT_EQ(iommu.type, kViotNodeVirtioIommuPci);
  EXPECT_EQ(iommu.length, 16);
  EXPECT_EQ(iommu.bdf, 0x0008);
  auto r0 = read_at<ViotPciRange>(*t, viot + h.node_offset + iommu.length);
  auto r1 = read_at<ViotPciRange>(*t, viot + h.node_offset + iommu.length + r0.length);
  EXPECT_EQ(r0.type, kViotNodePciRange);
  EXPECT_EQ(r0.output_node, h.node_offset);
  EXPECT_EQ(r0.bdf_start, 0x0000);
  EXPECT_EQ(r0.bdf_end, 0x0007);
  EXPECT_EQ(r1.output_node, h.node_offset);
  EXPECT_EQ(r1.endpoint_start, 0x0010u);
  EXPECT_EQ(r1.bdf_end, 0x00ff);
}

// The VIOT node layout spelled out from the VIOT specification: table fields after the header,
// then a virtio-iommu-pci node and one PCI range node whose output node is the IOMMU's offset.
TEST(AcpiTables, ViotMatchesTheSpecifiedLayoutByteForByte) {
  AcpiConfig c = test_config();
  c.viot = ViotConfig{{0, 0x0008}, {{0, 0x0010, 0x00ff}}};
  auto t = build_acpi_tables(c);
  ASSERT_TRUE(t.ok());
  Gpa viot = walk(*t)["VIOT"];
  ASSERT_EQ(read_at<TableHeader>(*t, viot).length, 88u);
  auto begin = t->bytes.begin() + (viot - t->base);
  std::vector<uint8_t> body(begin + 36, begin + 88);
  // clang-format off
  EXPECT_THAT(body, ElementsAreArray<uint8_t>({
      0x02, 0x00, 0x30, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,  // 2 nodes, the first at offset 48
      0x03, 0x00, 0x10, 0x00, 0x00, 0x00, 0x08, 0x00,  // virtio-iommu at 0000:00:01.0
      0, 0, 0, 0, 0, 0, 0, 0,
      0x01, 0x00, 0x18, 0x00, 0x10, 0x00, 0x00, 0x00,  // PCI range, endpoint IDs from 0x10
      0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0xff, 0x00,  // segment 0 only, BDF 0x10-0xff
      0x30, 0x00, 0, 0, 0, 0, 0, 0,                    // output node: offset 48
  }));
  // clang-format on
}

TEST(AcpiTables, DsdtCarriesTheHostBridgeAndS5) {
  auto t = build_acpi_tables(test_config());
  ASSERT_TRUE(t.ok());
  Gpa dsdt = walk(*t)["DSDT"];
  auto h = read_at<TableHeader>(*t, dsdt);
  EXPECT_EQ(h.revision, 2);  // 64-bit integers
  std::string body(t->bytes.begin() + (dsdt - t->base) + sizeof(TableHeader),
                   t->bytes.begin() + (dsdt - t->base) + h.length);
  EXPECT_THAT(body, HasSubstr("PCI0"));
  EXPECT_THAT(body, HasSubstr("COM1"));
  EXPECT_THAT(body, HasSubstr(std::string("_S5_\x12\x05\x02\x0a\x05\x00", 10)));
}

// _PRT entries encoded by hand from ACPI 6.5 sections 6.2.13 and 20.2: PackageOp, PkgLength,
// four elements {address, pin, source 0, GSI}. Slot 1 INTC lands on GSI 16 + (1 + 2) % 4 = 19;
// slot 0 INTA on GSI 16, its address 0xFFFF taking a WordConst.
TEST(AcpiTables, DsdtRoutesEachSlotPinToItsSwizzledGsi) {
  auto t = build_acpi_tables(test_config());
  ASSERT_TRUE(t.ok());
  Gpa dsdt = walk(*t)["DSDT"];
  auto h = read_at<TableHeader>(*t, dsdt);
  std::string body(t->bytes.begin() + (dsdt - t->base) + sizeof(TableHeader),
                   t->bytes.begin() + (dsdt - t->base) + h.length);
  // Name(_PRT, Package(0x80)): a two-byte PkgLength, then 128 elements.
  size_t prt = body.find("_PRT\x12");
  ASSERT_NE(prt, std::string::npos);
  EXPECT_EQ(static_cast<uint8_t>(body[prt + 5]) >> 6, 1) << "two-byte PkgLength";
  EXPECT_EQ(static_cast<uint8_t>(body[prt + 7]), 0x80);
  EXPECT_EQ(body.substr(prt + 8, 10), std::string("\x12\x09\x04\x0b\xff\xff\x00\x00\x0a\x10", 10));
  EXPECT_THAT(body,
              HasSubstr(std::string("\x12\x0c\x04\x0c\xff\xff\x01\x00\x0a\x02\x00\x0a\x13", 13)));
  // Slot 31 INTD: GSI 16 + (31 + 3) % 4 = 18.
  EXPECT_THAT(body,
              HasSubstr(std::string("\x12\x0c\x04\x0c\xff\xff\x1f\x00\x0a\x03\x00\x0a\x12", 13)));
}

TEST(AcpiConfigValidation, RejectsOutOfRangeCpuCounts) {
  AcpiConfig c = test_config();
  c.num_cpus = 0;
  EXPECT_EQ(build_acpi_tables(c).error().code(), Errc::kInvalidArgument);
  c.num_cpus = 256;
  auto r = build_acpi_tables(c);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message(), HasSubstr("256 vCPUs"));
  c.num_cpus = 255;
  EXPECT_TRUE(build_acpi_tables(c).ok());
}

TEST(AcpiConfigValidation, RejectsBadWindows) {
  AcpiConfig c = test_config();
  c.pci_mmio32 = {0xf0000000, 0x20000000};
  EXPECT_FALSE(build_acpi_tables(c).ok());
  c = test_config();
  c.pci_io = {0x1000, 0x10000};
  EXPECT_FALSE(build_acpi_tables(c).ok());
  c = test_config();
  c.pci_mmio64 = {0xffffffff00000000, 0x200000000};
  EXPECT_FALSE(build_acpi_tables(c).ok());
  c = test_config();
  c.pci_bus_start = 5;
  c.pci_bus_end = 4;
  EXPECT_FALSE(build_acpi_tables(c).ok());
  c = test_config();
  c.ecam_base = 0xe0001000;
  EXPECT_FALSE(build_acpi_tables(c).ok());
  c = test_config();
  c.com1_irq = 16;
  EXPECT_FALSE(build_acpi_tables(c).ok());
}

TEST(AcpiConfigValidation, RejectsBackwardsOrSelfTranslatingViotRanges) {
  AcpiConfig c = viot_config();
  c.viot->endpoints = {{0, 0x20, 0x10}};
  EXPECT_FALSE(build_acpi_tables(c).ok());
  c.viot->endpoints = {{0, 0x00, 0x08}};  // covers the IOMMU at 00:01.0
  EXPECT_FALSE(build_acpi_tables(c).ok());
  c.viot->endpoints = {{1, 0x00, 0x08}};  // same BDF on another segment is fine
  EXPECT_TRUE(build_acpi_tables(c).ok());
}

TEST(AcpiTables, FailsWhenTablesExceedTheReservedSpace) {
  auto r = build_acpi_tables(viot_config(), Gpa(layout::kAcpiStart), 256);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::kResourceExhausted);
  EXPECT_FALSE(build_acpi_tables(test_config(), Gpa(layout::kAcpiStart + 8)).ok());
}

}  // namespace
}  // namespace ioasis::acpi
