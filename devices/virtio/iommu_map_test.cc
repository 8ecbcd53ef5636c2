// MAP and UNMAP: virtio 1.2 sections 5.13.6.5 and 5.13.6.6.
#include <gtest/gtest.h>

#include "devices/virtio/iommu_engine.h"
#include "devices/virtio/iommu_test_fixture.h"

namespace ioasis::devices::virtio_iommu {
namespace {

class ViommuMapTest : public ViommuEngineTest {
 protected:
  void SetUp() override {
    ViommuEngineTest::SetUp();
    ASSERT_EQ(attach(1, kEp1), kSOk);
  }
};

TEST_F(ViommuMapTest, MapLetsTheEndpointReachTheGuestPhysicalRange) {
  ASSERT_EQ(map(1, 0x100000, 0x101fff, 0x4000), kSOk);
  std::memcpy(ram_.data() + 0x5008, "gpa+0x1008", 10);
  char buf[10];
  ASSERT_TRUE(view1_->read(Iova(0x101008), buf, 10).ok());
  EXPECT_EQ(std::memcmp(buf, "gpa+0x1008", 10), 0);
  ASSERT_TRUE(view1_->write(Iova(0x100000), "dev", 3).ok());
  EXPECT_EQ(std::memcmp(ram_.data() + 0x4000, "dev", 3), 0);
}

TEST_F(ViommuMapTest, OverlappingMapIsInvalAndLeavesTheFirstMapping) {
  ASSERT_EQ(map(1, 0x100000, 0x101fff, 0x4000), kSOk);
  EXPECT_EQ(map(1, 0x101000, 0x102fff, 0x8000), kSInval);
  EXPECT_EQ(map(1, 0x100000, 0x101fff, 0x4000), kSInval);
  EXPECT_EQ(mappings(1), 1u);
  auto span = view1_->translate(Iova(0x101000), 1, iommu::Access::kRead);
  ASSERT_TRUE(span.ok());
  EXPECT_EQ(span->hva, Hva::of(ram_.data() + 0x5000));
}

TEST_F(ViommuMapTest, UnalignedMapIsRange) {
  EXPECT_EQ(map(1, 0x100800, 0x101fff, 0x4000), kSRange) << "virt_start";
  EXPECT_EQ(map(1, 0x100000, 0x1017ff, 0x4000), kSRange) << "virt_end + 1";
  EXPECT_EQ(map(1, 0x100000, 0x101fff, 0x4200), kSRange) << "phys_start";
  EXPECT_EQ(map(1, 0x100000, 0x100000, 0x4000), kSRange) << "a single byte";
  EXPECT_EQ(mappings(1), 0u);
}

TEST_F(ViommuMapTest, MapEndingBeforeItStartsIsInval) {
  EXPECT_EQ(map(1, 0x102000, 0x100fff, 0x4000), kSInval);
}

TEST_F(ViommuMapTest, MapOutsideTheInputRangeIsRange) {
  uint64_t end = engine_->config().input_end;
  EXPECT_EQ(map(1, end + 1, end + 0x1000, 0x4000), kSRange);
  EXPECT_EQ(map(1, end - 0xfff, end + 0x1000, 0x4000), kSRange);
  EXPECT_EQ(map(1, end - 0xfff, end, 0x4000), kSOk);
}

TEST_F(ViommuMapTest, MapIntoAnUnknownDomainIsNoent) {
  EXPECT_EQ(map(5, 0x100000, 0x100fff, 0x4000), kSNoEnt);
}

TEST_F(ViommuMapTest, MapOutsideTheDomainRangeIsRange) {
  EXPECT_EQ(map(0x10000, 0x100000, 0x100fff, 0x4000), kSRange);
}

TEST_F(ViommuMapTest, MapWithAnUnknownFlagIsInval) {
  EXPECT_EQ(map(1, 0x100000, 0x100fff, 0x4000, kMapFRead | (1u << 9)), kSInval);
  EXPECT_EQ(map(1, 0x100000, 0x100fff, 0x4000, kMapFRead | kMapFMmio), kSInval)
      << "MMIO is not offered";
  EXPECT_EQ(mappings(1), 0u);
}

TEST_F(ViommuMapTest, MapGrantingNoAccessIsInval) {
  EXPECT_EQ(map(1, 0x100000, 0x100fff, 0x4000, 0), kSInval);
}

TEST_F(ViommuMapTest, MapOfAGuestPhysicalRangeOutsideRamIsRange) {
  EXPECT_EQ(map(1, 0x100000, 0x100fff, kRamSize), kSRange);
  EXPECT_EQ(map(1, 0x100000, 0x101fff, kRamSize - 0x1000), kSRange) << "runs past the end";
  EXPECT_EQ(map(1, 0x100000, 0x100fff, UINT64_MAX & ~0xfffull), kSRange);
}

TEST_F(ViommuMapTest, MapOverTheMsiDoorbellIsInval) {
  EXPECT_EQ(map(1, 0xfee00000, 0xfee00fff, 0x4000), kSInval);
  EXPECT_EQ(map(1, 0xfed00000, 0xfee00fff, 0x4000), kSInval);
  EXPECT_EQ(map(1, 0xfef00000, 0xfef00fff, 0x4000), kSOk);
}

TEST_F(ViommuMapTest, ReadOnlyMappingRefusesDeviceWrites) {
  ASSERT_EQ(map(1, 0x100000, 0x100fff, 0x4000, kMapFRead), kSOk);
  EXPECT_TRUE(reachable(*view1_, 0x100000));
  auto w = view1_->write(Iova(0x100000), "x", 1);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.fault().reason, iommu::FaultReason::kPermission);
  EXPECT_EQ(ram_.data()[0x4000], 0);
}

TEST_F(ViommuMapTest, MapAndUnmapAreUnsupportedWithoutMapUnmap) {
  start(EngineOptions{.bypass = false}, kFVersion1 | kFProbe);
  ASSERT_EQ(attach(1, kEp1), kSOk);
  EXPECT_EQ(map(1, 0x100000, 0x100fff, 0x4000), kSUnsupp);
  EXPECT_EQ(unmap(1, 0x100000, 0x100fff), kSUnsupp);
}

TEST_F(ViommuMapTest, UnmapInvalidatesCachedTranslationsBeforeItCompletes) {
  ASSERT_EQ(map(1, 0x100000, 0x100fff, 0x4000), kSOk);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(reachable(*view1_, 0x100000));
  EXPECT_GT(view1_->iotlb_hits(), 0u);
  ASSERT_EQ(unmap(1, 0x100000, 0x100fff), kSOk);
  EXPECT_FALSE(reachable(*view1_, 0x100000));
}

TEST_F(ViommuMapTest, UnmapWithNonZeroReservedIsInvalAndRemovesNothing) {
  ASSERT_EQ(map(1, 0x100000, 0x100fff, 0x4000), kSOk);
  UnmapBody b{};
  b.head.type = kTUnmap;
  b.domain = 1;
  b.virt_start = 0x100000;
  b.virt_end = 0x100fff;
  b.reserved[1] = 1;
  EXPECT_EQ(send(b), kSInval);
  EXPECT_EQ(mappings(1), 1u);
}

TEST_F(ViommuMapTest, UnmapOfAnUnknownDomainIsNoent) { EXPECT_EQ(unmap(9, 0, 0xfff), kSNoEnt); }

TEST_F(ViommuMapTest, UnmapOutsideTheInputRangeIsRange) {
  EXPECT_EQ(unmap(1, 0, UINT64_MAX), kSRange);
}

TEST_F(ViommuMapTest, UnmapOfTheWholeSpaceWorksWhenTheInputRangeIsFull) {
  start(EngineOptions{.input_range = {Iova(0), Iova(UINT64_MAX)}, .bypass = false});
  ASSERT_EQ(attach(1, kEp1), kSOk);
  ASSERT_EQ(map(1, 0x100000, 0x100fff, 0x4000), kSOk);
  ASSERT_EQ(map(1, 0xfffffffffffff000, UINT64_MAX, 0x5000), kSOk);
  EXPECT_EQ(unmap(1, 0, UINT64_MAX - 1), kSRange) << "would cut the top mapping";
  EXPECT_EQ(mappings(1), 2u);
  EXPECT_EQ(unmap(1, 0, UINT64_MAX), kSOk);
  EXPECT_EQ(mappings(1), 0u);
}

// The spec's UNMAP examples (5.13.6.6), each on a blank address space. The spec counts in bytes
// with a one-byte granule; here every address is a 4 KiB page number, so map(0, 4) covers pages
// 0-4: [0, 5 * 4096 - 1].
class ViommuUnmapExamplesTest : public ViommuMapTest {
 protected:
  uint8_t map_pages(uint64_t first, uint64_t last) {
    return map(1, first * kPage, (last + 1) * kPage - 1, 0x10000 + first * kPage);
  }
  uint8_t unmap_pages(uint64_t first, uint64_t last) {
    return unmap(1, first * kPage, (last + 1) * kPage - 1);
  }
  bool mapped(uint64_t page) { return reachable(*view1_, page * kPage); }
};

TEST_F(ViommuUnmapExamplesTest, Example1UnmapOfNothingSucceeds) {
  EXPECT_EQ(unmap_pages(0, 4), kSOk);
}

TEST_F(ViommuUnmapExamplesTest, Example2UnmapOfExactlyOneMappingRemovesIt) {
  ASSERT_EQ(map_pages(0, 9), kSOk);
  EXPECT_EQ(unmap_pages(0, 9), kSOk);
  EXPECT_EQ(mappings(1), 0u);
}

TEST_F(ViommuUnmapExamplesTest, Example3UnmapCoveringTwoMappingsRemovesBoth) {
  ASSERT_EQ(map_pages(0, 4), kSOk);
  ASSERT_EQ(map_pages(5, 9), kSOk);
  EXPECT_EQ(unmap_pages(0, 9), kSOk);
  EXPECT_EQ(mappings(1), 0u);
}

TEST_F(ViommuUnmapExamplesTest, Example4UnmapSplittingAMappingFailsAndRemovesNothing) {
  ASSERT_EQ(map_pages(0, 9), kSOk);
  EXPECT_EQ(unmap_pages(0, 4), kSRange);
  EXPECT_EQ(mappings(1), 1u);
  EXPECT_TRUE(mapped(0));
  EXPECT_TRUE(mapped(9));
}

TEST_F(ViommuUnmapExamplesTest, Example5UnmapOfTheFirstOfTwoMappingsRemovesOnlyIt) {
  ASSERT_EQ(map_pages(0, 4), kSOk);
  ASSERT_EQ(map_pages(5, 9), kSOk);
  EXPECT_EQ(unmap_pages(0, 4), kSOk);
  EXPECT_FALSE(mapped(0));
  EXPECT_TRUE(mapped(5));
  EXPECT_EQ(mappings(1), 1u);
}

TEST_F(ViommuUnmapExamplesTest, Example6UnmapSpillingOverUnmappedSpaceRemovesTheMapping) {
  ASSERT_EQ(map_pages(0, 4), kSOk);
  EXPECT_EQ(unmap_pages(0, 9), kSOk);
  EXPECT_EQ(mappings(1), 0u);
}

TEST_F(ViommuUnmapExamplesTest, Example7UnmapAcrossAHoleRemovesBothMappings) {
  ASSERT_EQ(map_pages(0, 4), kSOk);
  ASSERT_EQ(map_pages(10, 14), kSOk);
  EXPECT_EQ(unmap_pages(0, 14), kSOk);
  EXPECT_EQ(mappings(1), 0u);
}

TEST_F(ViommuUnmapExamplesTest, UnmapSplittingTheLastOfSeveralMappingsRemovesNone) {
  ASSERT_EQ(map_pages(0, 4), kSOk);
  ASSERT_EQ(map_pages(5, 9), kSOk);
  EXPECT_EQ(unmap_pages(0, 7), kSRange);
  EXPECT_EQ(mappings(1), 2u);
  EXPECT_TRUE(mapped(0));
}

TEST_F(ViommuUnmapExamplesTest, UnalignedUnmapBoundariesOutsideMappingsAreAccepted) {
  ASSERT_EQ(map_pages(2, 3), kSOk);
  EXPECT_EQ(unmap(1, 0x10, 4 * kPage + 0x10), kSOk);
  EXPECT_EQ(mappings(1), 0u);
}

}  // namespace
}  // namespace ioasis::devices::virtio_iommu
