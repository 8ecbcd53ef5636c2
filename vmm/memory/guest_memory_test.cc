#include "vmm/memory/guest_memory.h"

#include <gtest/gtest.h>

#include "vmm/layout.h"

namespace ioasis {
namespace {

TEST(GuestMemory, SmallRamIsOneRegionFromZero) {
  auto mem = GuestMemory::create(16 << 20);
  ASSERT_TRUE(mem.ok()) << mem.error().message();
  ASSERT_EQ(mem->regions().size(), 1u);
  EXPECT_EQ(mem->regions()[0].gpa, Gpa(0));
  EXPECT_EQ(mem->end(), Gpa(16 << 20));
}

TEST(GuestMemory, RamAbove3GiBMovesPastTheHole) {
  auto mem = GuestMemory::create(layout::kRamBelow4gEnd + (64 << 20));
  ASSERT_TRUE(mem.ok()) << mem.error().message();
  ASSERT_EQ(mem->regions().size(), 2u);
  EXPECT_EQ(mem->regions()[1].gpa, Gpa(layout::k4GiB));
  EXPECT_EQ(mem->regions()[1].fd_offset, layout::kRamBelow4gEnd);
  EXPECT_FALSE(mem->hva(Gpa(layout::kPciMmio32Start), 1).ok());
  EXPECT_TRUE(mem->hva(Gpa(layout::k4GiB + (64 << 20) - 8), 8).ok());
  EXPECT_FALSE(mem->hva(Gpa(layout::k4GiB + (64 << 20) - 8), 9).ok());
  // And back from host to guest-physical.
  EXPECT_EQ(mem->gpa_of(*mem->hva(Gpa(layout::k4GiB + 0x1234), 1)), Gpa(layout::k4GiB + 0x1234));
  EXPECT_EQ(mem->gpa_of(*mem->hva(Gpa(0x5000), 1)), Gpa(0x5000));
  EXPECT_FALSE(mem->gpa_of(Hva(0x10)).has_value());
}

TEST(GuestMemory, AccessesAreBoundsChecked) {
  auto mem = GuestMemory::create(8 << 20);
  ASSERT_TRUE(mem.ok());
  ASSERT_TRUE(mem->write_obj<uint64_t>(Gpa(0x1000), 0x1122334455667788).ok());
  EXPECT_EQ(*mem->read_obj<uint64_t>(Gpa(0x1000)), 0x1122334455667788u);
  EXPECT_FALSE(mem->read_obj<uint64_t>(Gpa((8 << 20) - 4)).ok());
  EXPECT_FALSE(mem->read_obj<uint8_t>(Gpa(UINT64_MAX)).ok());
  EXPECT_FALSE(mem->hva(Gpa(0x1000), UINT64_MAX).ok());
}

TEST(GuestMemory, RejectsBadSizes) {
  EXPECT_EQ(GuestMemory::create(1 << 20).error().code(), Errc::kInvalidArgument);
  EXPECT_EQ(GuestMemory::create((16 << 20) + 1).error().code(), Errc::kInvalidArgument);
}

}  // namespace
}  // namespace ioasis
