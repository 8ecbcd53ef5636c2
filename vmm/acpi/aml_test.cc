#include "vmm/acpi/aml.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "vmm/acpi/aml_resources.h"

namespace ioasis::acpi::aml {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using Bytes = std::vector<uint8_t>;

// PkgLength (ACPI 6.5 20.2.4) counts its own bytes: body + 1 fits one byte up to 63; otherwise
// the lead byte holds the count of extra bytes in bits 7-6 and the low nibble of the length.
TEST(AmlPkgLength, OneByteUpTo63IncludingItself) {
  EXPECT_THAT(*encode_pkg_length(0), ElementsAre(0x01));
  EXPECT_THAT(*encode_pkg_length(62), ElementsAre(0x3f));
}

TEST(AmlPkgLength, TwoBytesUpTo4095) {
  // 63 + 2 = 65 = 0x041.
  EXPECT_THAT(*encode_pkg_length(63), ElementsAre(0x41, 0x04));
  // 4093 + 2 = 4095 = 0xfff, the largest two-byte value.
  EXPECT_THAT(*encode_pkg_length(4093), ElementsAre(0x4f, 0xff));
}

TEST(AmlPkgLength, ThreeBytesUpTo2To20) {
  // 4094 + 2 = 4096 does not fit 12 bits, so three bytes: 4094 + 3 = 0x1001.
  EXPECT_THAT(*encode_pkg_length(4094), ElementsAre(0x81, 0x00, 0x01));
  EXPECT_THAT(*encode_pkg_length((1u << 20) - 4), ElementsAre(0x8f, 0xff, 0xff));
}

TEST(AmlPkgLength, FourBytesUpTo2To28) {
  // (2^20 - 3) + 4 = 0x100001.
  EXPECT_THAT(*encode_pkg_length((1u << 20) - 3), ElementsAre(0xc1, 0x00, 0x00, 0x01));
  EXPECT_THAT(*encode_pkg_length((1u << 28) - 5), ElementsAre(0xcf, 0xff, 0xff, 0xff));
}

TEST(AmlPkgLength, RejectsLengthsBeyond2To28) {
  EXPECT_FALSE(encode_pkg_length((1u << 28) - 4).has_value());
}

TEST(AmlInteger, UsesConstantOpcodesForZeroOneAndOnes) {
  EXPECT_THAT(integer(0).bytes(), ElementsAre(0x00));
  EXPECT_THAT(integer(1).bytes(), ElementsAre(0x01));
  EXPECT_THAT(integer(~uint64_t{0}).bytes(), ElementsAre(0xff));
}

TEST(AmlInteger, UsesSmallestPrefixedWidth) {
  EXPECT_THAT(integer(2).bytes(), ElementsAre(0x0a, 0x02));
  EXPECT_THAT(integer(0xff).bytes(), ElementsAre(0x0a, 0xff));
  EXPECT_THAT(integer(0x100).bytes(), ElementsAre(0x0b, 0x00, 0x01));
  EXPECT_THAT(integer(0xffff).bytes(), ElementsAre(0x0b, 0xff, 0xff));
  EXPECT_THAT(integer(0x10000).bytes(), ElementsAre(0x0c, 0x00, 0x00, 0x01, 0x00));
  EXPECT_THAT(integer(0xfee00000).bytes(), ElementsAre(0x0c, 0x00, 0x00, 0xe0, 0xfe));
  EXPECT_THAT(integer(0x100000000).bytes(),
              ElementsAre(0x0e, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00));
  EXPECT_THAT(integer(0xfffffffffffffffe).bytes(),
              ElementsAre(0x0e, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff));
}

// EISAID packs 'P','N','P' as 5-bit letters and "0A03" as nibbles: 0x41d00a03 read
// most-significant byte first, the well-known PNP0A03 = 0x030ad041 as a little-endian DWord.
TEST(AmlEisaId, CompressesPnpIds) {
  EXPECT_THAT(eisa_id("PNP0A03").bytes(), ElementsAre(0x0c, 0x41, 0xd0, 0x0a, 0x03));
  EXPECT_THAT(eisa_id("PNP0A08").bytes(), ElementsAre(0x0c, 0x41, 0xd0, 0x0a, 0x08));
  EXPECT_THAT(eisa_id("PNP0501").bytes(), ElementsAre(0x0c, 0x41, 0xd0, 0x05, 0x01));
}

TEST(AmlEisaId, RejectsMalformedIds) {
  EXPECT_FALSE(eisa_id("PNP0A0").valid());
  EXPECT_FALSE(eisa_id("pnp0A03").valid());
  EXPECT_FALSE(eisa_id("PNP0G03").valid());
}

TEST(AmlNameString, PadsSegmentsAndUsesPrefixes) {
  EXPECT_THAT(name_string("_S5").bytes(), ElementsAre('_', 'S', '5', '_'));
  EXPECT_THAT(name_string("\\_SB").bytes(), ElementsAre('\\', '_', 'S', 'B', '_'));
  EXPECT_THAT(name_string("\\_SB.PCI0").bytes(),
              ElementsAre('\\', 0x2e, '_', 'S', 'B', '_', 'P', 'C', 'I', '0'));
  EXPECT_THAT(name_string("A.B.C").bytes(),
              ElementsAre(0x2f, 3, 'A', '_', '_', '_', 'B', '_', '_', '_', 'C', '_', '_', '_'));
  EXPECT_THAT(name_string("\\").bytes(), ElementsAre('\\', 0x00));
}

TEST(AmlNameString, RejectsInvalidSegments) {
  EXPECT_FALSE(name_string("").valid());
  EXPECT_FALSE(name_string("TOOLONG").valid());
  EXPECT_FALSE(name_string("0ABC").valid());
  EXPECT_FALSE(name_string("pci0").valid());
  EXPECT_FALSE(name_string("\\_SB.").valid());
  EXPECT_FALSE(name_string("\\_SB..PCI0").valid());
}

TEST(AmlString, IsNulTerminatedAscii) {
  EXPECT_THAT(string("ab").bytes(), ElementsAre(0x0d, 'a', 'b', 0x00));
  EXPECT_FALSE(string(std::string_view("a\0b", 3)).valid());
}

TEST(AmlObjects, EncodeS5Package) {
  // Name(_S5, Package() {5, 0}).
  EXPECT_THAT(name("_S5", package({integer(5), integer(0)})).bytes(),
              ElementsAre(0x08, '_', 'S', '5', '_', 0x12, 0x05, 0x02, 0x0a, 0x05, 0x00));
}

TEST(AmlObjects, EncodeScopeAndDevice) {
  EXPECT_THAT(scope("\\_SB", {}).bytes(), ElementsAre(0x10, 0x06, '\\', '_', 'S', 'B', '_'));
  EXPECT_THAT(device("COM1", {name("_UID", integer(0))}).bytes(),
              ElementsAre(0x5b, 0x82, 0x0b, 'C', 'O', 'M', '1', 0x08, '_', 'U', 'I', 'D', 0x00));
}

TEST(AmlObjects, EncodeMethodWithFlags) {
  // Method(_STA, 0, NotSerialized) { Return(0x0f) }.
  EXPECT_THAT(method("_STA", 0, false, {return_value(integer(0x0f))}).bytes(),
              ElementsAre(0x14, 0x09, '_', 'S', 'T', 'A', 0x00, 0xa4, 0x0a, 0x0f));
  EXPECT_EQ(method("_DSM", 4, true, {}).bytes()[6], 0x0c);
  EXPECT_FALSE(method("_DSM", 8, false, {}).valid());
}

TEST(AmlObjects, LargeBodiesGetMultiBytePkgLength) {
  std::vector<uint8_t> data(5000, 0xaa);
  Aml b = buffer(data);
  // 0x0b 0x88 0x13 (BufferSize 5000) + 5000 bytes = 5003, plus three PkgLength bytes = 5006.
  EXPECT_THAT(Bytes(b.bytes().begin(), b.bytes().begin() + 7),
              ElementsAre(0x11, 0x8e, 0x38, 0x01, 0x0b, 0x88, 0x13));
  EXPECT_EQ(b.bytes().size(), 1 + 3 + 3 + 5000u);
}

TEST(AmlObjects, InvalidChildInvalidatesParent) {
  Aml bad = device("PCI0", {name("_HID", eisa_id("bogus"))});
  EXPECT_FALSE(bad.valid());
  EXPECT_FALSE(scope("\\_SB", {bad}).valid());
  EXPECT_TRUE(scope("\\_SB", {device("PCI0", {})}).valid());
}

TEST(AmlResources, EncodeUartResources) {
  EXPECT_THAT(io(0x3f8, 0x3f8, 0, 8).bytes, ElementsAre(0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0, 8));
  EXPECT_THAT(irq_no_flags(4).bytes, ElementsAre(0x22, 0x10, 0x00));
  EXPECT_FALSE(irq_no_flags(16).valid);
}

TEST(AmlResources, EncodeWordBusNumber) {
  // WordBusNumber(ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, 0, 0xff, 0, 0x100).
  EXPECT_THAT(word_bus_number(0, 0xff).bytes,
              ElementsAreArray({0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff,
                                0x00, 0x00, 0x00, 0x00, 0x01}));
}

TEST(AmlResources, EncodeQWordMemory) {
  Resource r = qword_memory(0x100000000, 0x1ffffffff, MemoryCaching::kCacheable);
  ASSERT_EQ(r.bytes.size(), 46u);
  EXPECT_THAT(Bytes(r.bytes.begin(), r.bytes.begin() + 6),
              ElementsAre(0x8a, 0x2b, 0x00, 0x00, 0x0c, 0x03));
  // Range length at offset 38: 0x1_0000_0000.
  EXPECT_THAT(Bytes(r.bytes.begin() + 38, r.bytes.end()),
              ElementsAre(0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00));
  EXPECT_FALSE(qword_memory(0, ~uint64_t{0}, MemoryCaching::kCacheable).valid);
}

TEST(AmlResources, TemplateEndsWithEndTag) {
  Aml t = resource_template({irq_no_flags(4)});
  EXPECT_THAT(t.bytes(), ElementsAre(0x11, 0x08, 0x0a, 0x05, 0x22, 0x10, 0x00, 0x79, 0x00));
  EXPECT_FALSE(resource_template({irq_no_flags(20)}).valid());
}

}  // namespace
}  // namespace ioasis::acpi::aml
