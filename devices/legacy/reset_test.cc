#include "devices/legacy/reset.h"

#include <gtest/gtest.h>

#include "vmm/layout.h"

namespace ioasis::devices {
namespace {

uint8_t in(BusDevice& d, uint64_t port) {
  uint8_t v = 0;
  d.read(port, std::span(&v, 1));
  return v;
}
void out(BusDevice& d, uint64_t port, uint8_t v) { d.write(port, std::span<const uint8_t>(&v, 1)); }

TEST(ResetControl, ResetsOnlyWhenResetCpuAndSysResetAreBothSet) {
  int resets = 0;
  ResetControl rc([&] { ++resets; });
  out(rc, 0, 0x02);  // Linux first selects a hard reset...
  EXPECT_EQ(resets, 0);
  EXPECT_EQ(in(rc, 0), 0x02);
  out(rc, 0, 0x04);  // a CPU-only reset is not a VM reset
  EXPECT_EQ(resets, 0);
  out(rc, 0, 0x06);  // ...then starts it
  EXPECT_EQ(resets, 1);
  EXPECT_EQ(in(rc, 0) & 0x04, 0);  // RST_CPU does not stick
}

class I8042Test : public ::testing::Test {
 protected:
  int resets = 0;
  I8042 kbc{[this] { ++resets; }};
};

TEST_F(I8042Test, IdleStatusHasNoOutputSoFlushLoopsEnd) {
  EXPECT_EQ(in(kbc, 4) & 0x01, 0);
  EXPECT_EQ(in(kbc, 4) & 0x02, 0);  // input buffer never busy
}

TEST_F(I8042Test, ReadCtrRepliesThroughTheDataPort) {
  out(kbc, 4, 0x20);
  EXPECT_EQ(in(kbc, 4) & 0x01, 0x01);
  uint8_t ctr = in(kbc, 0);
  EXPECT_EQ(in(kbc, 4) & 0x01, 0);
  out(kbc, 4, 0x60);
  out(kbc, 0, static_cast<uint8_t>(ctr ^ 0x01));
  out(kbc, 4, 0x20);
  EXPECT_EQ(in(kbc, 0), ctr ^ 0x01);
}

TEST_F(I8042Test, SelfTestReplies0x55) {
  out(kbc, 4, 0xaa);
  EXPECT_EQ(in(kbc, 0), 0x55);
}

TEST_F(I8042Test, Command0xfeResets) {
  out(kbc, 4, 0xd0);
  EXPECT_EQ(resets, 0);
  out(kbc, 4, 0xfe);
  EXPECT_EQ(resets, 1);
}

TEST_F(I8042Test, ByteForKeyboardIsNotMistakenForCommand) {
  out(kbc, 0, 0xfe);
  EXPECT_EQ(resets, 0);
}

TEST(SleepControl, S5WithSlpEnPowersOff) {
  int offs = 0;
  SleepControl sc([&] { ++offs; });
  uint8_t s5 = static_cast<uint8_t>(layout::kSleepTypeS5 << 2);
  out(sc, 0, s5);  // SLP_TYP without SLP_EN does nothing
  EXPECT_EQ(offs, 0);
  out(sc, 0, 0x80);  // clearing WAK_STS through the shared status register
  EXPECT_EQ(offs, 0);
  out(sc, 0, static_cast<uint8_t>((3 << 2) | 0x20));  // S3 is not supported
  EXPECT_EQ(offs, 0);
  out(sc, 0, static_cast<uint8_t>(s5 | 0x20));
  EXPECT_EQ(offs, 1);
  EXPECT_EQ(in(sc, 0), 0);
}

}  // namespace
}  // namespace ioasis::devices
