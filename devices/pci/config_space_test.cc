#include "devices/pci/config_space.h"

#include <gtest/gtest.h>

namespace ioasis::devices {
namespace {

using namespace pci;  // NOLINT

PciIds test_ids() {
  return PciIds{.vendor_id = 0x1af4,
                .device_id = 0x1042,
                .class_code = 0x018000,
                .revision_id = 1,
                .subsystem_vendor_id = 0x1af4,
                .subsystem_id = 0x0002,
                .interrupt_pin = 1};
}

TEST(PciConfigSpace, HeaderCarriesIdsAndIgnoresWritesToThem) {
  PciConfigSpace cs(test_ids());
  EXPECT_EQ(cs.read(kVendorId), 0x10421af4u);
  EXPECT_EQ(cs.read(kRevisionId), 0x01800001u);
  EXPECT_EQ(cs.read(kSubsystemVendorId), 0x00021af4u);
  cs.write(kVendorId, 0, 0xf);
  cs.write(kRevisionId, 0, 0xf);
  EXPECT_EQ(cs.read(kVendorId), 0x10421af4u);
  EXPECT_EQ(cs.read(kRevisionId), 0x01800001u);
  EXPECT_EQ(cs.read(kInterruptLine), 0x0100u);  // pin INTA#, line unassigned
}

TEST(PciConfigSpace, CommandKeepsOnlyDefinedBitsAndStatusErrorsAreWriteOneToClear) {
  PciConfigSpace cs(test_ids());
  cs.write(kCommand, 0xffff, 0x3);
  EXPECT_EQ(cs.command(), kCommandIo | kCommandMemory | kCommandBusMaster | kCommandParity |
                              kCommandSerr | kCommandIntxDisable);
  EXPECT_TRUE(cs.memory_enabled());
  EXPECT_TRUE(cs.bus_master_enabled());
  cs.set16(kStatus, 0x8000 | 0x0010);   // the device saw a parity error
  cs.write(kCommand, 0xffffffff, 0x3);  // status bytes not enabled: untouched
  EXPECT_EQ(cs.get16(kStatus), 0x8010);
  cs.write(kCommand, 0x80000000u | cs.command(), 0xf);
  EXPECT_EQ(cs.get16(kStatus), 0x0010);  // cleared, capability bit is read-only
}

TEST(PciConfigSpace, ByteEnablesLeaveOtherBytesAlone) {
  PciConfigSpace cs(test_ids());
  cs.write(kInterruptLine, 0x0000000b, 0x1);
  EXPECT_EQ(cs.read(kInterruptLine) & 0xff, 0x0bu);
  cs.write(kInterruptLine, 0xffffff22, 0x0);
  EXPECT_EQ(cs.read(kInterruptLine) & 0xff, 0x0bu);
}

TEST(PciConfigSpace, ThirtyTwoBitBarAnswersSizing) {
  PciConfigSpace cs(test_ids());
  ASSERT_TRUE(cs.add_bar({.index = 0, .size = 0x1000, .kind = PciBarKind::kMemory32}).ok());
  cs.write(kBar0, 0xffffffff, 0xf);
  EXPECT_EQ(cs.read(kBar0), 0xfffff000u);
  cs.write(kBar0, 0xc0001000, 0xf);
  EXPECT_EQ(cs.read(kBar0), 0xc0001000u);
  EXPECT_EQ(cs.bar_address(0), 0xc0001000u);
}

TEST(PciConfigSpace, SixtyFourBitBarPairAnswersSizing) {
  PciConfigSpace cs(test_ids());
  ASSERT_TRUE(
      cs.add_bar({.index = 2, .size = 0x4000, .kind = PciBarKind::kMemory64, .prefetchable = true})
          .ok());
  EXPECT_EQ(cs.read(kBar0 + 8), 0x0000000cu);  // 64-bit, prefetchable
  cs.write(kBar0 + 8, 0xffffffff, 0xf);
  cs.write(kBar0 + 12, 0xffffffff, 0xf);
  EXPECT_EQ(cs.read(kBar0 + 8), 0xffffc00cu);
  EXPECT_EQ(cs.read(kBar0 + 12), 0xffffffffu);
  cs.write(kBar0 + 8, 0x00010000, 0xf);
  cs.write(kBar0 + 12, 0x00000001, 0xf);
  EXPECT_EQ(cs.bar_address(2), 0x100010000u);
}

TEST(PciConfigSpace, HugeSixtyFourBitBarSizesThroughTheUpperHalf) {
  PciConfigSpace cs(test_ids());
  ASSERT_TRUE(
      cs.add_bar({.index = 0, .size = uint64_t{1} << 33, .kind = PciBarKind::kMemory64}).ok());
  cs.write(kBar0, 0xffffffff, 0xf);
  cs.write(kBar0 + 4, 0xffffffff, 0xf);
  EXPECT_EQ(cs.read(kBar0), 0x00000004u);
  EXPECT_EQ(cs.read(kBar0 + 4), 0xfffffffeu);
}

TEST(PciConfigSpace, IoBarAnswersSizing) {
  PciConfigSpace cs(test_ids());
  ASSERT_TRUE(cs.add_bar({.index = 5, .size = 0x20, .kind = PciBarKind::kIo}).ok());
  cs.write(kBar0 + 20, 0xffffffff, 0xf);
  EXPECT_EQ(cs.read(kBar0 + 20), 0xffffffe1u);
}

TEST(PciConfigSpace, RejectsBadBars) {
  PciConfigSpace cs(test_ids());
  EXPECT_FALSE(cs.add_bar({.index = 0, .size = 0x1800}).ok());
  EXPECT_FALSE(cs.add_bar({.index = 0, .size = 8}).ok());
  EXPECT_FALSE(cs.add_bar({.index = 0, .size = 0x400, .kind = PciBarKind::kIo}).ok());
  EXPECT_FALSE(cs.add_bar({.index = 5, .size = 0x1000, .kind = PciBarKind::kMemory64}).ok());
  ASSERT_TRUE(cs.add_bar({.index = 0, .size = 0x1000, .kind = PciBarKind::kMemory64}).ok());
  EXPECT_EQ(cs.add_bar({.index = 1, .size = 0x1000}).error().code(), Errc::kAlreadyExists);
}

TEST(PciConfigSpace, UnimplementedBarsAndRomReadZeroAfterSizing) {
  PciConfigSpace cs(test_ids());
  cs.write(kBar0 + 4, 0xffffffff, 0xf);
  cs.write(0x30, 0xfffff800, 0xf);
  EXPECT_EQ(cs.read(kBar0 + 4), 0u);
  EXPECT_EQ(cs.read(0x30), 0u);
}

TEST(PciConfigSpace, CapabilitiesAreLinkedInOrder) {
  PciConfigSpace cs(test_ids());
  EXPECT_EQ(cs.get16(kStatus) & kStatusCapabilityList, 0);
  uint8_t first[] = {0x09, 0xee, 0x05, 0x01, 0x02};  // vendor-specific, 5 bytes
  uint8_t second[] = {0x11, 0x00, 0x00, 0x00};
  uint8_t second_mask[] = {0x00, 0x00, 0x00, 0xc0};
  auto a = cs.add_capability(first);
  auto b = cs.add_capability(second, second_mask);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, 0x40);
  EXPECT_EQ(*b, 0x48);  // dword-aligned after 5 bytes
  EXPECT_NE(cs.get16(kStatus) & kStatusCapabilityList, 0);
  EXPECT_EQ(cs.get8(kCapabilitiesPointer), 0x40);
  EXPECT_EQ(cs.get8(0x41), 0x48);  // next pointer overwritten
  EXPECT_EQ(cs.get8(0x49), 0x00);  // end of list
  cs.write(0x48, 0xffffffff, 0xf);
  EXPECT_EQ(cs.read(0x48), 0xc0000011u);
  cs.write(0x40, 0xffffffff, 0xf);
  EXPECT_EQ(cs.read(0x40), 0x01054809u);
}

TEST(PciConfigSpace, CapabilitiesMustFitTheFirst256Bytes) {
  PciConfigSpace cs(test_ids());
  std::vector<uint8_t> big(0xb0, 0x09);
  EXPECT_TRUE(cs.add_capability(big).ok());
  EXPECT_EQ(cs.add_capability(big).error().code(), Errc::kResourceExhausted);
}

TEST(PciConfigSpace, ResetRestoresPowerOnState) {
  PciConfigSpace cs(test_ids());
  ASSERT_TRUE(cs.add_bar({.index = 0, .size = 0x1000}).ok());
  uint8_t cap[] = {0x11, 0, 0, 0};
  uint8_t mask[] = {0, 0, 0, 0xc0};
  ASSERT_TRUE(cs.add_capability(cap, mask).ok());
  cs.write(kCommand, 0x6, 0x3);
  cs.write(kBar0, 0xc0000000, 0xf);
  cs.write(0x40, 0xc0000000, 0xf);
  cs.reset();
  EXPECT_EQ(cs.command(), 0);
  EXPECT_EQ(cs.read(kBar0), 0u);
  EXPECT_EQ(cs.read(0x40), 0x11u);
  EXPECT_EQ(cs.get8(kCapabilitiesPointer), 0x40);
}

TEST(PciConfigSpace, ExtendedSpaceIs4KiBAndOutOfRangeReadsAllOnes) {
  PciConfigSpace conventional(test_ids());
  EXPECT_EQ(conventional.read(0x100), 0xffffffffu);
  PciConfigSpace extended(test_ids(), kExtendedConfigSpaceSize);
  EXPECT_EQ(extended.size(), 4096);
  EXPECT_EQ(extended.read(0xffc), 0u);
  EXPECT_EQ(extended.read(0x1000), 0xffffffffu);
}

}  // namespace
}  // namespace ioasis::devices
