#include "devices/vfio/server/dma_regions.h"

#include <gtest/gtest.h>

#include "devices/vfio/vfio_user_test_util.h"

namespace ioasis::devices::vfio_user {
namespace {

using testing::Memfd;

constexpr uint64_t kPage = 4096;

class DmaRegionsTest : public ::testing::Test {
 protected:
  Result<void> map(uint64_t iova, uint64_t offset, uint64_t size, bool r, bool w) {
    return regions_.map(Iova(iova), size, r, w, std::move(*ram_.fd.dup()), offset);
  }
  Memfd ram_ = Memfd::create(16 * kPage);
  DmaRegions regions_;
};

TEST_F(DmaRegionsTest, OverlappingMapIsRefusedAsAlreadyExisting) {
  ASSERT_TRUE(map(0x10000, 0, 4 * kPage, true, true).ok());
  auto r = map(0x10000 + 3 * kPage, 0, 2 * kPage, true, true);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::kAlreadyExists);
  EXPECT_FALSE(map(0x10000 - kPage, 0, 2 * kPage, true, true).ok());
  EXPECT_TRUE(map(0x10000 + 4 * kPage, 0, kPage, true, true).ok());  // adjacent is fine
}

TEST_F(DmaRegionsTest, UnmapMustMatchAMappingExactly) {
  ASSERT_TRUE(map(0x10000, 0, 4 * kPage, true, true).ok());
  EXPECT_FALSE(regions_.unmap(Iova(0x10000), kPage).ok());
  EXPECT_FALSE(regions_.unmap(Iova(0x11000), 3 * kPage).ok());
  EXPECT_TRUE(regions_.unmap(Iova(0x10000), 4 * kPage).ok());
  EXPECT_EQ(regions_.count(), 0u);
}

TEST_F(DmaRegionsTest, CheckNamesTheFaultOfTheFirstBadByte) {
  ASSERT_TRUE(map(0x10000, 0, kPage, true, false).ok());
  EXPECT_EQ(regions_.check(Iova(0x10000), kPage, false), DmaFaultKind::kNone);
  EXPECT_EQ(regions_.check(Iova(0x10000), kPage, true), DmaFaultKind::kReadOnly);
  EXPECT_EQ(regions_.check(Iova(0x10000), kPage + 1, false), DmaFaultKind::kUnmapped);
  EXPECT_EQ(regions_.check(Iova(UINT64_MAX), 2, false), DmaFaultKind::kUnmapped);
}

TEST_F(DmaRegionsTest, CopySpansAdjacentRegionsBackedByDifferentOffsets) {
  // IOVA 0x10000-0x11fff maps memfd pages 4 and 2: not contiguous on the host side.
  ASSERT_TRUE(map(0x10000, 4 * kPage, kPage, true, true).ok());
  ASSERT_TRUE(map(0x11000, 2 * kPage, kPage, true, true).ok());
  ASSERT_TRUE(map(0x20000, 8 * kPage, 2 * kPage, true, true).ok());
  std::memset(ram_.at(4 * kPage + kPage - 8), 0xaa, 8);
  std::memset(ram_.at(2 * kPage), 0xbb, 8);
  EXPECT_EQ(regions_.copy(Iova(0x10000 + kPage - 8), Iova(0x20000), 16), DmaFaultKind::kNone);
  EXPECT_EQ(*ram_.at(8 * kPage + 7), 0xaa);
  EXPECT_EQ(*ram_.at(8 * kPage + 8), 0xbb);
}

TEST_F(DmaRegionsTest, RegionWithoutFdAndNoClientFailsAsPeerError) {
  ASSERT_TRUE(regions_.map(Iova(0x10000), kPage, true, true, UniqueFd(), 0).ok());
  ASSERT_TRUE(map(0x20000, 0, kPage, true, true).ok());
  EXPECT_EQ(regions_.copy(Iova(0x10000), Iova(0x20000), 16), DmaFaultKind::kPeer);
}

}  // namespace
}  // namespace ioasis::devices::vfio_user
