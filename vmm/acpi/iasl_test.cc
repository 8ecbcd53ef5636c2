// Checks the generated tables with ACPICA's own tools (Debian acpica-tools): `iasl -d` must
// disassemble every table without errors or checksum warnings, its disassembly must say what we
// meant, recompiling that disassembly must give back our bytes, and `acpiexec` must load the set
// and evaluate the namespace.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "vmm/acpi/acpi.h"
#include "vmm/acpi/tables.h"

namespace ioasis::acpi {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr uint32_t kCpus = 3;
constexpr uint64_t kMmio64Base = 0x10000000000;

struct ToolRun {
  int exit_code = -1;
  std::string output;
};

// Runs `command` in `dir` through the shell, collecting stdout and stderr together.
ToolRun run_in(const fs::path& dir, const std::string& command) {
  std::string full = fmt::format("cd '{}' && timeout 60 {} 2>&1", dir.string(), command);
  ToolRun r;
  FILE* pipe = popen(full.c_str(), "r");
  if (pipe == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) r.output.append(buf, n);
  int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

// iasl pads its field listings with runs of spaces; one space makes them easy to match.
std::string squeeze(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == ' ' && !out.empty() && out.back() == ' ') continue;
    out.push_back(c);
  }
  return out;
}

// The line that follows `anchor` in `text`, or "" when `anchor` is absent.
std::string line_after(const std::string& text, const std::string& anchor) {
  size_t at = text.find(anchor);
  if (at == std::string::npos) return "";
  at += anchor.size();
  return text.substr(at, text.find('\n', at) - at);
}

std::string file_stem(const std::string& signature) {
  if (signature == "RSD PTR ") return "rsdp";
  std::string s = signature;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

class IaslTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists("/usr/bin/iasl")) << "iasl missing: install acpica-tools";
    AcpiConfig c;
    c.num_cpus = kCpus;
    c.pci_mmio64 = {kMmio64Base, 0x4000000000};
    c.power_button_gsi = 10;
    if (GetParam()) c.viot = ViotConfig{{0, 0x0008}, {{0, 0x0000, 0x0007}, {0, 0x0010, 0x00ff}}};
    auto t = build_acpi_tables(c);
    ASSERT_TRUE(t.ok()) << t.error().message();
    tables_ = std::move(*t);
    char tmpl[] = "/tmp/ioasis-acpi-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    for (const auto& loc : tables_.tables) {
      std::ofstream f(dir_ / (file_stem(loc.signature) + ".dat"), std::ios::binary);
      f.write(reinterpret_cast<const char*>(table(loc.signature).data()),
              static_cast<std::streamsize>(loc.length));
      locations_[loc.signature] = loc;
    }
  }

  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  std::span<const uint8_t> table(const std::string& signature) const {
    for (const auto& loc : tables_.tables) {
      if (loc.signature == signature) {
        return {tables_.bytes.data() + (loc.gpa - tables_.base), loc.length};
      }
    }
    ADD_FAILURE() << "no table " << signature;
    return {};
  }

  // Disassembles one table and returns its squeezed .dsl, failing the test on anything iasl
  // complains about.
  std::string disassemble(const std::string& signature) {
    std::string stem = file_stem(signature);
    ToolRun r = run_in(dir_, "iasl -d " + stem + ".dat");
    std::string dsl = read_file(dir_ / (stem + ".dsl"));
    EXPECT_EQ(r.exit_code, 0) << signature << ":\n" << r.output;
    EXPECT_THAT(r.output, Not(HasSubstr("Error"))) << signature;
    EXPECT_THAT(r.output, Not(HasSubstr("Warning"))) << signature;
    EXPECT_THAT(dsl, Not(HasSubstr("Incorrect checksum"))) << signature;
    EXPECT_FALSE(dsl.empty()) << signature << ": no disassembly\n" << r.output;
    return squeeze(dsl);
  }

  bool with_viot() const { return GetParam(); }

  AcpiTables tables_;
  std::map<std::string, TableLocation> locations_;
  fs::path dir_;
};

TEST_P(IaslTest, DisassemblesEveryTableWithoutComplaint) {
  for (const auto& loc : tables_.tables) {
    if (loc.signature == "RSD PTR ") continue;  // iasl -d takes only tables with a header
    std::string dsl = disassemble(loc.signature);
    if (loc.signature == "DSDT") {
      EXPECT_THAT(dsl, HasSubstr("DefinitionBlock (\"\", \"DSDT\", 2, \"IOASIS\""));
    } else {
      EXPECT_THAT(dsl, HasSubstr(fmt::format("Signature : \"{}\"", loc.signature)));
      EXPECT_THAT(dsl, HasSubstr(fmt::format("Table Length : {:08X}", loc.length)));
    }
  }
  EXPECT_EQ(locations_.contains("VIOT"), with_viot());
}

TEST_P(IaslTest, DsdtDescribesHostBridgeRoutingUartAndS5) {
  std::string dsl = disassemble("DSDT");
  for (const char* want : {
           "Device (PCI0)",
           "Name (_HID, EisaId (\"PNP0A08\")",
           "Name (_CID, EisaId (\"PNP0A03\")",
           "Name (_SEG, Zero)",
           "Name (_BBN, Zero)",
           "WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,",
           "0x00FF, // Range Maximum",
           "0x0CF7, // Range Maximum",
           "0x0D00, // Range Minimum",
           "0xC0000000, // Range Minimum",
           "0xDFFFFFFF, // Range Maximum",
           "0x0000010000000000, // Range Minimum",
           "Name (_HID, EisaId (\"PNP0C02\")",
           "0xE0000000, // Address Base",
           "Device (COM1)",
           "Name (_HID, EisaId (\"PNP0501\")",
           "0x03F8, // Range Minimum",
           "0x08, // Length",
           "IRQNoFlags ()\n {4}",
           "Name (_S5, Package (0x02)",
           "Name (_PRT, Package (0x80)",
       }) {
    EXPECT_THAT(dsl, HasSubstr(want));
  }
  EXPECT_THAT(dsl, HasSubstr("QWordMemory"));
  EXPECT_THAT(dsl, HasSubstr("DWordMemory"));
}

TEST_P(IaslTest, DsdtHasAPowerButtonOnAGenericEventDevice) {
  std::string dsl = disassemble("DSDT");
  for (const char* want : {
           "Device (PWRB)",
           "Name (_HID, EisaId (\"PNP0C0C\")",
           "Device (GED0)",
           "Name (_HID, \"ACPI0013\"",
           "Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, )",
           "0x0000000A,",
           "Method (_EVT, 1, Serialized)",
           "Notify (\\_SB.PWRB, 0x80)",
       }) {
    EXPECT_THAT(dsl, HasSubstr(want));
  }
}

TEST_P(IaslTest, FadtIsHardwareReducedWithSleepAndResetRegisters) {
  std::string dsl = disassemble("FACP");
  EXPECT_THAT(dsl, HasSubstr("Hardware Reduced (V5) : 1"));
  EXPECT_THAT(dsl, HasSubstr("Reset Register Supported (V2) : 1"));
  EXPECT_THAT(dsl, HasSubstr("Revision : 06"));
  EXPECT_THAT(dsl, HasSubstr("FADT Minor Revision : 05"));
  EXPECT_THAT(dsl, HasSubstr(fmt::format("DSDT Address : {:016X}", locations_["DSDT"].gpa.value)));
  EXPECT_THAT(dsl, HasSubstr("Address : 0000000000000CF9\n"));
  EXPECT_THAT(dsl, HasSubstr("Value to cause reset : 06"));
  EXPECT_THAT(dsl, HasSubstr("PM1A Control Block Address : 00000000"));
  for (const char* reg : {"Sleep Control Register", "Sleep Status Register"}) {
    auto at = dsl.find(reg);
    ASSERT_NE(at, std::string::npos) << reg;
    std::string block = dsl.substr(at, 400);
    EXPECT_THAT(block, HasSubstr("Space ID : 01 [SystemIO]")) << reg;
    EXPECT_THAT(block, HasSubstr("Address : 0000000000000600")) << reg;
  }
}

TEST_P(IaslTest, MadtHasEachLocalApicTheIoapicOverridesAndNmi) {
  std::string dsl = disassemble("APIC");
  EXPECT_THAT(dsl, HasSubstr("Local Apic Address : FEE00000"));
  EXPECT_THAT(dsl, HasSubstr("PC-AT Compatibility : 1"));
  size_t lapics = 0;
  for (size_t at = 0; (at = dsl.find("[Processor Local APIC]", at)) != std::string::npos; ++at) {
    ++lapics;
  }
  EXPECT_EQ(lapics, kCpus);
  for (uint32_t cpu = 0; cpu < kCpus; ++cpu) {
    EXPECT_THAT(dsl, HasSubstr(fmt::format("Local Apic ID : {:02X}", cpu)));
  }
  EXPECT_THAT(dsl, HasSubstr("[I/O APIC]"));
  EXPECT_THAT(dsl, HasSubstr("Address : FEC00000"));
  // IRQ 0 routed to GSI 2: the line after "Source : 00" holds the GSI.
  EXPECT_THAT(line_after(dsl, "Source : 00\n"), HasSubstr("Interrupt : 00000002"));
  EXPECT_THAT(dsl, HasSubstr("Flags (decoded below) : 000D\n Polarity : 1\n Trigger Mode : 3"));
  EXPECT_THAT(dsl, HasSubstr("[Local APIC NMI]"));
  EXPECT_THAT(dsl, HasSubstr("Interrupt Input LINT : 01"));
}

TEST_P(IaslTest, McfgPointsAtTheEcam) {
  std::string dsl = disassemble("MCFG");
  EXPECT_THAT(dsl, HasSubstr(fmt::format("Base Address : {:016X}", layout::kPciEcamStart)));
  EXPECT_THAT(dsl, HasSubstr("Segment Group Number : 0000"));
  EXPECT_THAT(dsl, HasSubstr("Start Bus Number : 00"));
  EXPECT_THAT(dsl, HasSubstr("End Bus Number : FF"));
}

TEST_P(IaslTest, XsdtListsEveryTableButTheDsdt) {
  std::string dsl = disassemble("XSDT");
  std::vector<std::string> listed = {"FACP", "APIC", "MCFG"};
  if (with_viot()) listed.push_back("VIOT");
  for (size_t i = 0; i < listed.size(); ++i) {
    EXPECT_THAT(dsl, HasSubstr(fmt::format("ACPI Table Address {} : {:016X}", i,
                                           locations_[listed[i]].gpa.value)))
        << listed[i];
  }
  EXPECT_THAT(dsl, Not(HasSubstr(fmt::format("ACPI Table Address {} :", listed.size()))));
}

// This iasl (20200925) predates VIOT support: it checks the header and checksum and dumps the
// rest raw. The node layout is checked byte for byte in acpi_test.
TEST_P(IaslTest, ViotHeaderDecodesWhenPresent) {
  if (!with_viot()) {
    EXPECT_FALSE(locations_.contains("VIOT"));
    return;
  }
  std::string dsl = disassemble("VIOT");
  EXPECT_THAT(dsl, HasSubstr("Signature : \"VIOT\""));
  EXPECT_THAT(dsl, HasSubstr(fmt::format("Table Length : {:08X}", 48 + 16 + 2 * 24)));
}

// Compiling iasl's disassembly of a data table must give our table back. iasl stamps its own
// creator ID and revision, and so its own checksum; every other byte must match.
TEST_P(IaslTest, DataTablesRecompileToTheSameBytes) {
  for (const char* sig : {"FACP", "APIC", "MCFG", "XSDT"}) {
    disassemble(sig);
    std::string stem = file_stem(sig);
    ToolRun r = run_in(dir_, "iasl " + stem + ".dsl");
    ASSERT_EQ(r.exit_code, 0) << sig << ":\n" << r.output;
    EXPECT_THAT(r.output, HasSubstr("0 Errors, 0 Warnings")) << sig;
    std::string aml = read_file(dir_ / (stem + ".aml"));
    auto ours = table(sig);
    ASSERT_EQ(aml.size(), ours.size()) << sig;
    for (size_t i = 0; i < ours.size(); ++i) {
      bool iasl_stamped = i == offsetof(TableHeader, checksum) ||
                          (i >= offsetof(TableHeader, creator_id) && i < sizeof(TableHeader));
      if (iasl_stamped) continue;
      EXPECT_EQ(static_cast<uint8_t>(aml[i]), ours[i]) << sig << " byte " << i;
    }
  }
}

// With optimizations off, iasl encodes the disassembled ASL exactly as we did.
TEST_P(IaslTest, DsdtRecompilesToTheSameAml) {
  disassemble("DSDT");
  ToolRun r = run_in(dir_, "iasl -oa dsdt.dsl");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("0 Errors, 0 Warnings, 0 Remarks"));
  std::string aml = read_file(dir_ / "dsdt.aml");
  auto ours = table("DSDT");
  ASSERT_EQ(aml.size(), ours.size());
  EXPECT_TRUE(std::equal(ours.begin() + sizeof(TableHeader), ours.end(),
                         reinterpret_cast<const uint8_t*>(aml.data()) + sizeof(TableHeader)));
}

// iasl cannot disassemble a bare RSDP, but it compiles one from a field listing and computes both
// checksums itself; the result must equal ours.
TEST_P(IaslTest, RsdpMatchesTheOneIaslCompiles) {
  Rsdp rsdp;
  std::memcpy(&rsdp, tables_.bytes.data() + (tables_.rsdp - tables_.base), sizeof(rsdp));
  std::ofstream(dir_ / "rsdp.asl") << fmt::format(
      "[0008] Signature : \"RSD PTR \"\n"
      "[0001] Checksum : 00\n"
      "[0006] Oem ID : \"IOASIS\"\n"
      "[0001] Revision : 02\n"
      "[0004] RSDT Address : 00000000\n"
      "[0004] Length : 00000024\n"
      "[0008] XSDT Address : {:016X}\n"
      "[0001] Extended Checksum : 00\n"
      "[0003] Reserved : 000000\n",
      locations_["XSDT"].gpa.value);
  ToolRun r = run_in(dir_, "iasl rsdp.asl");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string aml = read_file(dir_ / "rsdp.aml");
  ASSERT_EQ(aml.size(), sizeof(Rsdp));
  EXPECT_EQ(std::memcmp(aml.data(), &rsdp, sizeof(Rsdp)), 0);
}

// acpiexec loads the tables into ACPICA's interpreter, as a guest kernel would, and evaluates
// objects from the namespace.
TEST_P(IaslTest, AcpiexecLoadsTablesAndEvaluatesTheNamespace) {
  std::string files = "dsdt.dat facp.dat apic.dat mcfg.dat";
  if (with_viot()) files += " viot.dat";
  ToolRun r = run_in(dir_,
                     "acpiexec -b 'evaluate \\_S5; evaluate \\_SB.PCI0._HID; "
                     "evaluate \\_SB.PCI0._CRS; evaluate \\_SB.COM1._CRS; "
                     "evaluate \\_SB.GED0._CRS' " +
                         files);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, Not(HasSubstr("Error")));
  EXPECT_THAT(r.output, Not(HasSubstr("Warning")));
  EXPECT_THAT(r.output, Not(HasSubstr("AE_")));
  EXPECT_THAT(r.output, HasSubstr("ACPI: DSDT"));
  std::string out = squeeze(r.output);
  EXPECT_THAT(out, HasSubstr("[Package] Contains 2 Elements:\n [Integer] = 0000000000000005\n "
                             "[Integer] = 0000000000000000"));
  EXPECT_THAT(out, HasSubstr("[Integer] = 00000000080AD041"));  // EISAID PNP0A08
  // The COM1 _CRS buffer: IO 0x3f8 length 8, IRQ 4, End Tag.
  EXPECT_THAT(out, HasSubstr("47 01 F8 03 F8 03 00 08 22 10 00 79 00"));
  // The GED _CRS buffer: Interrupt(ResourceConsumer, Edge, ActiveHigh, Exclusive) {10}.
  EXPECT_THAT(out, HasSubstr("89 06 00 03 01 0A 00 00 00 79 00"));
}

// ACPICA's interpreter returns \_SB.PCI0._PRT as an OS sees it: 128 packages {address, pin,
// source, GSI}, one per slot and pin, with the GSI swizzle the VMM wires passthrough INTx to.
TEST_P(IaslTest, AcpiexecEvaluatesThePciRoutingTable) {
  ToolRun r = run_in(dir_, "acpiexec -b 'evaluate \\_SB.PCI0._PRT' dsdt.dat facp.dat apic.dat");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, Not(HasSubstr("AE_")));
  std::string out = squeeze(r.output);
  size_t at = out.find("[Package] Contains 128 Elements:");
  ASSERT_NE(at, std::string::npos) << r.output;
  std::vector<uint64_t> values;
  const std::string tag = "[Integer] = ";
  for (at = out.find(tag, at); at != std::string::npos; at = out.find(tag, at)) {
    at += tag.size();
    values.push_back(std::stoull(out.substr(at, 16), nullptr, 16));
  }
  ASSERT_EQ(values.size(), 128u * 4);
  for (uint64_t slot = 0; slot < 32; ++slot) {
    for (uint64_t pin = 0; pin < 4; ++pin) {
      const uint64_t* e = &values[4 * (4 * slot + pin)];
      EXPECT_EQ(e[0], slot << 16 | 0xffff) << "slot " << slot << " pin " << pin;
      EXPECT_EQ(e[1], pin) << "slot " << slot << " pin " << pin;
      EXPECT_EQ(e[2], 0u) << "source: a GSI, no link device";
      EXPECT_EQ(e[3], layout::kGsiPciIntxBase + (slot + pin) % 4)
          << "slot " << slot << " pin " << pin;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Viot, IaslTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "WithViot" : "WithoutViot"; });

}  // namespace
}  // namespace ioasis::acpi
