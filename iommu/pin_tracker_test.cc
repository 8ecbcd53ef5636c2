#include "iommu/pin_tracker.h"

#include <gtest/gtest.h>

namespace ioasis::iommu::internal {
namespace {

TEST(PinTracker, OverlappingSpansCountTheirUnionOnce) {
  PinTracker t;
  EXPECT_EQ(t.new_bytes({0, 0x1000, 0x5000}), 0x4000u);
  t.pin({0, 0x1000, 0x5000});
  EXPECT_EQ(t.new_bytes({0, 0x3000, 0x8000}), 0x3000u);
  t.pin({0, 0x3000, 0x8000});
  EXPECT_EQ(t.pinned_bytes(), 0x7000u);
  t.unpin({0, 0x1000, 0x5000});
  EXPECT_EQ(t.pinned_bytes(), 0x5000u);
  t.unpin({0, 0x3000, 0x8000});
  EXPECT_EQ(t.pinned_bytes(), 0u);
  EXPECT_EQ(t.segments(), 0u);
}

TEST(PinTracker, DomainsAreSeparateKeySpaces) {
  PinTracker t;
  t.pin({0, 0, 0x2000});
  t.pin({1, 0, 0x2000});
  EXPECT_EQ(t.pinned_bytes(), 0x4000u);
  EXPECT_EQ(t.new_bytes({2, 0, 0x1000}), 0x1000u);
}

TEST(PinTracker, AdjacentPagesMergeIntoOneSegment) {
  PinTracker t;
  for (uint64_t p = 0; p < 64; ++p) t.pin({0, p * 0x1000, (p + 1) * 0x1000});
  EXPECT_EQ(t.segments(), 1u);
  EXPECT_EQ(t.pinned_bytes(), 64 * 0x1000u);
  t.unpin({0, 10 * 0x1000, 11 * 0x1000});
  EXPECT_EQ(t.segments(), 2u);
  EXPECT_EQ(t.pinned_bytes(), 63 * 0x1000u);
}

TEST(PinTracker, SpanBridgingGapsAddsOnlyTheGaps) {
  PinTracker t;
  t.pin({0, 0x1000, 0x2000});
  t.pin({0, 0x4000, 0x5000});
  EXPECT_EQ(t.new_bytes({0, 0, 0x6000}), 0x4000u);
  t.pin({0, 0, 0x6000});
  EXPECT_EQ(t.pinned_bytes(), 0x6000u);
  t.unpin({0, 0, 0x6000});
  EXPECT_EQ(t.pinned_bytes(), 0x2000u);
}

}  // namespace
}  // namespace ioasis::iommu::internal
