#include "devices/virtio/queue.h"

#include <gtest/gtest.h>

#include "devices/virtio/testing/fake_driver.h"

namespace ioasis::devices::virtio {
namespace {

using testing::Buf;
using testing::FakeDriverQueue;
using testing::FakeGuest;

constexpr uint64_t kRings = FakeGuest::kBase;
constexpr uint64_t kData = FakeGuest::kBase + 0x10000;
constexpr uint16_t kSize = 8;

class QueueTest : public ::testing::Test {
 protected:
  void SetUp() override { start(false, true); }
  void start(bool event_idx, bool indirect) {
    queue_.reset();
    queue_.setup() = driver_.setup();
    ASSERT_TRUE(queue_.validate_setup().ok());
    queue_.start(event_idx, indirect);
  }
  Result<std::optional<DescriptorChain>> pop() { return queue_.pop(*view_); }

  FakeGuest guest_;
  std::unique_ptr<iommu::DmaView> view_ = guest_.new_view();
  FakeDriverQueue driver_{guest_, kSize, kRings};
  Queue queue_{kSize};
};

TEST_F(QueueTest, EmptyRingPopsNothing) {
  auto r = pop();
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());
}

TEST_F(QueueTest, ChainSplitsIntoReadableAndWritableSegments) {
  uint16_t head = driver_.add_chain(
      {{kData, 16}, {kData + 0x100, 512}, {kData + 0x1000, 512, true}, {kData + 0x2000, 1, true}});
  auto r = pop();
  ASSERT_TRUE(r.ok() && r->has_value());
  const DescriptorChain& c = **r;
  EXPECT_EQ(c.head, head);
  ASSERT_EQ(c.readable.size(), 2u);
  ASSERT_EQ(c.writable.size(), 2u);
  EXPECT_EQ(c.readable[1].addr, Iova(kData + 0x100));
  EXPECT_EQ(c.readable_len, 528u);
  EXPECT_EQ(c.writable_len, 513u);
  EXPECT_FALSE(pop()->has_value());
}

TEST_F(QueueTest, ReaderAndWriterCopyAcrossSegments) {
  std::memcpy(guest_.ptr(kData), "hello ", 6);
  std::memcpy(guest_.ptr(kData + 0x100), "world", 5);
  driver_.add_chain(
      {{kData, 6}, {kData + 0x100, 5}, {kData + 0x200, 3, true}, {kData + 0x300, 4, true}});
  auto r = pop();
  ASSERT_TRUE(r.ok() && r->has_value());
  ChainReader reader(**r, *view_);
  char text[11];
  ASSERT_TRUE(reader.read(text, sizeof(text)).ok());
  EXPECT_EQ(std::string(text, 11), "hello world");
  EXPECT_FALSE(reader.read(text, 1).ok());
  ChainWriter writer(**r, *view_);
  ASSERT_TRUE(writer.write("abcdefg", 7).ok());
  EXPECT_EQ(writer.written(), 7u);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(guest_.ptr(kData + 0x300)), 4), "defg");
  EXPECT_FALSE(writer.write("x", 1).ok());
}

TEST_F(QueueTest, UsedRingRecordsHeadAndLength) {
  uint16_t head = driver_.add_chain({{kData, 1, true}});
  auto r = pop();
  ASSERT_TRUE(r.ok() && r->has_value());
  ASSERT_TRUE(queue_.add_used(*view_, head, 1).ok());
  EXPECT_EQ(driver_.used_idx(), 1);
  EXPECT_EQ(driver_.used(0).id, head);
  EXPECT_EQ(driver_.used(0).len, 1u);
}

TEST_F(QueueTest, LoopingChainIsRefused) {
  driver_.set_desc(0, {kData, 16, kDescFlagNext, 1});
  driver_.set_desc(1, {kData, 16, kDescFlagNext, 0});
  driver_.publish(0);
  EXPECT_FALSE(pop().ok());
}

TEST_F(QueueTest, ChainAsLongAsTheQueueIsAcceptedOneLongerIsNot) {
  std::vector<Buf> bufs(kSize, Buf{kData, 4});
  driver_.add_chain(bufs);
  auto r = pop();
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->readable.size(), kSize);
  // The last descriptor points back to the first: kSize + 1 steps.
  for (uint16_t i = 0; i < kSize; ++i)
    driver_.set_desc(i, {kData, 4, kDescFlagNext, uint16_t((i + 1) % kSize)});
  driver_.publish(0);
  EXPECT_FALSE(pop().ok());
}

TEST_F(QueueTest, HeadOrNextOutOfRangeIsRefused) {
  driver_.publish(kSize);
  EXPECT_FALSE(pop().ok());
  start(false, true);
  driver_.set_desc(2, {kData, 4, kDescFlagNext, kSize + 3});
  driver_.publish(2);
  EXPECT_FALSE(pop().ok());
}

TEST_F(QueueTest, ReadableAfterWritableIsRefused) {
  driver_.add_chain({{kData, 4, true}, {kData, 4}});
  EXPECT_FALSE(pop().ok());
}

TEST_F(QueueTest, WrappingOrOversizedLengthsAreRefused) {
  driver_.add_chain({{UINT64_MAX - 8, 16}});
  EXPECT_FALSE(pop().ok());
  start(false, true);
  driver_.add_chain({{kData, 0xffffffff}, {kData, 2}});
  EXPECT_FALSE(pop().ok());
}

TEST_F(QueueTest, AvailableIndexRunningAheadIsRefused) {
  driver_.set_avail_idx(kSize + 1);
  EXPECT_FALSE(pop().ok());
}

TEST_F(QueueTest, IndirectTableBecomesTheChain) {
  uint16_t head = driver_.add_indirect(kData + 0x8000, {{kData, 16}, {kData + 0x100, 8, true}});
  auto r = pop();
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->head, head);
  EXPECT_EQ((*r)->readable_len, 16u);
  EXPECT_EQ((*r)->writable_len, 8u);
}

TEST_F(QueueTest, IndirectWithoutTheFeatureIsRefused) {
  start(false, false);
  driver_.add_indirect(kData + 0x8000, {{kData, 16}});
  EXPECT_FALSE(pop().ok());
}

TEST_F(QueueTest, NestedIndirectIsRefused) {
  driver_.add_indirect(kData + 0x8000, {{kData, 16}});
  guest_.put(kData + 0x8000, VirtqDesc{kData + 0x9000, 16, kDescFlagIndirect, 0});
  EXPECT_FALSE(pop().ok());
}

TEST_F(QueueTest, IndirectTableOfBadLengthIsRefused) {
  driver_.set_desc(0, {kData + 0x8000, 24, kDescFlagIndirect, 0});
  driver_.publish(0);
  EXPECT_FALSE(pop().ok());
}

TEST_F(QueueTest, IndirectChainLoopIsRefused) {
  driver_.add_indirect(kData + 0x8000, {{kData, 16}, {kData, 16}});
  guest_.put(kData + 0x8000 + 16, VirtqDesc{kData, 16, kDescFlagNext, 0});
  EXPECT_FALSE(pop().ok());
}

TEST_F(QueueTest, UnreachableDescriptorTableFaults) {
  queue_.reset();
  QueueSetup s = driver_.setup();
  s.desc = Iova(0x10000000);  // not mapped
  queue_.setup() = s;
  queue_.start(false, true);
  driver_.publish(0);
  EXPECT_FALSE(pop().ok());
  auto fault = queue_.take_fault();
  ASSERT_TRUE(fault.has_value());
  EXPECT_EQ(fault->iova, Iova(0x10000000));
  EXPECT_EQ(fault->reason, iommu::FaultReason::kUnmapped);
}

TEST_F(QueueTest, UnmappedBufferFaultsInTheReader) {
  driver_.add_chain({{0x20000000, 16}});
  auto r = pop();
  ASSERT_TRUE(r.ok() && r->has_value());
  ChainReader reader(**r, *view_);
  uint8_t b[16];
  EXPECT_FALSE(reader.read(b, sizeof(b)).ok());
  ASSERT_TRUE(reader.fault().has_value());
  EXPECT_EQ(reader.fault()->iova, Iova(0x20000000));
}

TEST_F(QueueTest, UnmapInvalidatesBeforeTheNextAccess) {
  driver_.add_chain({{kData, 16}});
  auto r = pop();
  ASSERT_TRUE(r.ok() && r->has_value());
  ChainReader first(**r, *view_);
  uint8_t b[16];
  ASSERT_TRUE(first.read(b, 16).ok());
  ASSERT_TRUE(guest_.context().unmap(guest_.ioas(), Iova(FakeGuest::kBase), guest_.size()).ok());
  ChainReader second(**r, *view_);
  EXPECT_FALSE(second.read(b, 16).ok());
}

TEST_F(QueueTest, NoInterruptFlagSuppressesInterrupts) {
  uint16_t head = driver_.add_chain({{kData, 4}});
  ASSERT_TRUE(pop()->has_value());
  ASSERT_TRUE(queue_.add_used(*view_, head, 0).ok());
  driver_.set_avail_flags(kAvailFlagNoInterrupt);
  EXPECT_FALSE(*queue_.needs_interrupt(*view_));
  head = driver_.add_chain({{kData, 4}});
  ASSERT_TRUE(pop()->has_value());
  ASSERT_TRUE(queue_.add_used(*view_, head, 0).ok());
  driver_.set_avail_flags(0);
  EXPECT_TRUE(*queue_.needs_interrupt(*view_));
  EXPECT_FALSE(*queue_.needs_interrupt(*view_));  // nothing new since
}

TEST_F(QueueTest, EventIdxInterruptsOnlyWhenUsedEventIsPassed) {
  start(true, true);
  driver_.set_used_event(1);  // interrupt once the second buffer is used
  for (int i = 0; i < 2; ++i) {
    uint16_t head = driver_.add_chain({{kData, 4}});
    ASSERT_TRUE(pop()->has_value());
    ASSERT_TRUE(queue_.add_used(*view_, head, 0).ok());
    EXPECT_EQ(*queue_.needs_interrupt(*view_), i == 1) << i;
  }
}

TEST_F(QueueTest, EventIdxPublishesAvailEventWhenTheRingRunsDry) {
  start(true, true);
  driver_.add_chain({{kData, 4}});
  driver_.add_chain({{kData, 4}});
  ASSERT_TRUE(pop()->has_value());
  ASSERT_TRUE(pop()->has_value());
  EXPECT_FALSE(pop()->has_value());
  EXPECT_EQ(driver_.avail_event(), 2);
}

TEST(QueueSetupTest, SizeMustBeAPowerOfTwoWithinTheMaximum) {
  Queue q(256);
  q.setup() = {100, Iova(0x1000), Iova(0x2000), Iova(0x3000), false};
  EXPECT_FALSE(q.validate_setup().ok());
  q.setup().size = 512;
  EXPECT_FALSE(q.validate_setup().ok());
  q.setup().size = 128;
  EXPECT_TRUE(q.validate_setup().ok());
  q.setup().desc = Iova(0x1008);  // descriptor tables are 16-byte aligned
  EXPECT_FALSE(q.validate_setup().ok());
}

TEST(VringNeedEventTest, MatchesTheSpecFormula) {
  EXPECT_TRUE(vring_need_event(0, 1, 0));
  EXPECT_FALSE(vring_need_event(1, 1, 0));
  EXPECT_TRUE(vring_need_event(1, 2, 0));
  EXPECT_TRUE(vring_need_event(0xffff, 0, 0xfffe));  // across the wrap
}

}  // namespace
}  // namespace ioasis::devices::virtio
