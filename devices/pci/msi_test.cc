#include "devices/pci/msi.h"

#include <gtest/gtest.h>

#include "devices/eventfd_interrupts_test_util.h"
#include "devices/pci/pci_regs.h"

namespace ioasis::devices {
namespace {

using testing::Interrupts;

constexpr uint16_t kCap = 0x50;
// 64-bit, per-vector masking, four vectors capable.
constexpr uint16_t kControl = pci::kMsiControl64Bit | pci::kMsiControlPerVectorMask |
                              2u << pci::kMsiControlMultipleCapableShift;

class MsiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = Msi::create(irqs_, kCap, kControl);
    ASSERT_TRUE(m.ok()) << m.error().message();
    msi_ = std::move(*m);
  }
  bool control(uint16_t value) { return msi_->write(kCap, uint32_t{value} << 16, 0xc); }

  Interrupts irqs_;
  std::unique_ptr<Msi> msi_;
};

TEST_F(MsiTest, LayoutComesFromTheDeviceAndOnlyOurBitsAreWritable) {
  EXPECT_EQ(msi_->size(), 24u);
  ASSERT_EQ(irqs_.routes.size(), 4u);
  // The device's id and next pointer stay; the layout bits cannot be changed.
  EXPECT_EQ(msi_->read(kCap, 0x6005), 0x6005u | uint32_t{kControl} << 16);
  control(0xffff);
  uint32_t v = msi_->read(kCap, 0x6005) >> 16;
  EXPECT_EQ(v & ~0x71u, kControl);
  EXPECT_EQ(v & 0x71u, 0x71u);
  msi_->write(kCap + pci::kMsiAddressLo, 0xfee00003, 0xf);
  EXPECT_EQ(msi_->read(kCap + pci::kMsiAddressLo, 0), 0xfee00000u) << "dword aligned";
}

TEST_F(MsiTest, EnablingGivesEachVectorTheDataWithItsNumberAndUnmasksIt) {
  msi_->write(kCap + pci::kMsiAddressLo, 0xfee01000, 0xf);
  msi_->write(kCap + pci::kMsiAddressHi, 0, 0xf);
  msi_->write(kCap + pci::msi_data_offset(true), 0x4440, 0x3);
  EXPECT_TRUE(msi_->enabled_eventfds().empty());
  for (auto* r : irqs_.routes) EXPECT_TRUE(r->masked);

  // Two vectors of the four.
  EXPECT_TRUE(control(pci::kMsiControlEnable | 1u << pci::kMsiControlMultipleEnableShift));
  ASSERT_EQ(msi_->enabled_eventfds().size(), 2u);
  EXPECT_EQ(msi_->enabled_eventfds()[1], irqs_.routes[1]->eventfd());
  EXPECT_EQ(irqs_.routes[0]->message, (MsiMessage{0xfee01000, 0x4440}));
  EXPECT_EQ(irqs_.routes[1]->message, (MsiMessage{0xfee01000, 0x4441}));
  EXPECT_FALSE(irqs_.routes[0]->masked);
  EXPECT_FALSE(irqs_.routes[1]->masked);
  EXPECT_TRUE(irqs_.routes[2]->masked) << "not enabled";

  // A per-vector mask bit masks that route only; the enabled set stays.
  EXPECT_FALSE(msi_->write(kCap + pci::msi_mask_offset(true), 0x2, 0xf));
  EXPECT_FALSE(irqs_.routes[0]->masked);
  EXPECT_TRUE(irqs_.routes[1]->masked);

  EXPECT_TRUE(control(0));
  EXPECT_TRUE(msi_->enabled_eventfds().empty());
  EXPECT_TRUE(irqs_.routes[0]->masked);
}

TEST_F(MsiTest, ResetTurnsItOffAndForgetsTheMessage) {
  msi_->write(kCap + pci::kMsiAddressLo, 0xfee01000, 0xf);
  control(pci::kMsiControlEnable);
  msi_->reset();
  EXPECT_TRUE(msi_->enabled_eventfds().empty());
  EXPECT_EQ(msi_->read(kCap + pci::kMsiAddressLo, 0), 0u);
  EXPECT_EQ(msi_->read(kCap, 0) >> 16, kControl);
}

}  // namespace
}  // namespace ioasis::devices
