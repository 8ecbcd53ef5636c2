#include "devices/virtio/blk.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "devices/virtio/testing/fake_driver.h"

namespace ioasis::devices::virtio {
namespace {

using testing::Buf;
using testing::FakeDriverQueue;
using testing::FakeGuest;

constexpr uint64_t kRings = FakeGuest::kBase;
constexpr uint64_t kHdr = FakeGuest::kBase + 0x10000;
constexpr uint64_t kData = FakeGuest::kBase + 0x20000;
constexpr uint64_t kStatus = FakeGuest::kBase + 0x30000;
constexpr uint64_t kDiskSectors = 64;

class RecordingSignals : public DeviceSignals {
 public:
  void used_buffers(uint16_t) override { ++used; }
  void config_changed() override {}
  void needs_reset(const Error& why) override { reset_reasons.push_back(why.message()); }
  void dma_fault(const iommu::DmaFault& f) override { faults.push_back(f); }
  int used = 0;
  std::vector<std::string> reset_reasons;
  std::vector<iommu::DmaFault> faults;
};

class BlkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char name[] = "/tmp/ioasis-blk-XXXXXX";
    int fd = mkstemp(name);
    ASSERT_GE(fd, 0);
    path_ = name;
    std::vector<uint8_t> image(kDiskSectors * kSectorSize);
    for (size_t i = 0; i < image.size(); ++i) image[i] = static_cast<uint8_t>(i / kSectorSize);
    ASSERT_EQ(::write(fd, image.data(), image.size()), static_cast<ssize_t>(image.size()));
    ::close(fd);
    open_disk(false);
  }
  void TearDown() override { ::unlink(path_.c_str()); }
  void open_disk(bool readonly) {
    auto blk = Blk::open({.path = path_, .readonly = readonly, .id = "disk-7", .queue_size = 16});
    ASSERT_TRUE(blk.ok()) << blk.error().message();
    blk_ = *blk;
    queue_.reset();
    queue_.setup() = driver_.setup();
    queue_.start(false, true);
    ASSERT_TRUE(blk_->activate({.features = kFeatureVersion1,
                                .queues = std::span(&queue_, 1),
                                .dma = view_.get(),
                                .signals = &signals_})
                    .ok());
  }
  // Sends one request; returns its status byte.
  uint8_t request(uint32_t type, uint64_t sector, std::vector<Buf> data) {
    guest_.put(kHdr, VirtioBlkOutHdr{type, 0, sector});
    guest_.put<uint8_t>(kStatus, 0xff);
    std::vector<Buf> chain{{kHdr, sizeof(VirtioBlkOutHdr)}};
    chain.insert(chain.end(), data.begin(), data.end());
    chain.push_back({kStatus, 1, true});
    driver_.add_chain(chain);
    blk_->notify(0);
    return guest_.get<uint8_t>(kStatus);
  }
  std::vector<uint8_t> file_sector(uint64_t sector) {
    std::vector<uint8_t> b(kSectorSize);
    int fd = ::open(path_.c_str(), O_RDONLY);
    EXPECT_EQ(::pread(fd, b.data(), b.size(), sector * kSectorSize), 512);
    ::close(fd);
    return b;
  }

  std::string path_;
  FakeGuest guest_;
  std::unique_ptr<iommu::DmaView> view_ = guest_.new_view();
  FakeDriverQueue driver_{guest_, 16, kRings};
  Queue queue_{16};
  RecordingSignals signals_;
  std::shared_ptr<Blk> blk_;
};

TEST_F(BlkTest, ConfigReportsCapacityInSectors) {
  VirtioBlkConfig c;
  blk_->read_config(0, std::span(reinterpret_cast<uint8_t*>(&c), sizeof(c)));
  EXPECT_EQ(c.capacity, kDiskSectors);
  EXPECT_EQ(c.blk_size, 512u);
  EXPECT_EQ(blk_->features() & kBlkFeatureRo, 0u);
  EXPECT_NE(blk_->features() & kBlkFeatureFlush, 0u);
}

TEST_F(BlkTest, ReadFillsTheBuffersAndCountsTheBytes) {
  EXPECT_EQ(request(kBlkTypeIn, 3, {{kData, 512, true}, {kData + 0x1000, 512, true}}),
            kBlkStatusOk);
  EXPECT_EQ(guest_.get<uint8_t>(kData), 3);
  EXPECT_EQ(guest_.get<uint8_t>(kData + 0x1000 + 511), 4);
  EXPECT_EQ(driver_.used(0).len, 1025u);
  EXPECT_EQ(signals_.used, 1);
}

TEST_F(BlkTest, WriteReachesTheFile) {
  std::memset(guest_.ptr(kData), 0x5a, 512);
  EXPECT_EQ(request(kBlkTypeOut, 10, {{kData, 512}}), kBlkStatusOk);
  EXPECT_EQ(file_sector(10), std::vector<uint8_t>(512, 0x5a));
  EXPECT_EQ(request(kBlkTypeFlush, 0, {}), kBlkStatusOk);
}

TEST_F(BlkTest, ReadOnlyDiskRefusesWritesWithIoErr) {
  open_disk(true);
  EXPECT_NE(blk_->features() & kBlkFeatureRo, 0u);
  std::memset(guest_.ptr(kData), 0x5a, 512);
  EXPECT_EQ(request(kBlkTypeOut, 10, {{kData, 512}}), kBlkStatusIoErr);
  EXPECT_EQ(file_sector(10), std::vector<uint8_t>(512, 10));
}

TEST_F(BlkTest, AccessBeyondCapacityFails) {
  EXPECT_EQ(request(kBlkTypeIn, kDiskSectors - 1, {{kData, 1024, true}}), kBlkStatusIoErr);
  EXPECT_EQ(request(kBlkTypeIn, UINT64_MAX, {{kData, 512, true}}), kBlkStatusIoErr);
}

TEST_F(BlkTest, PartialSectorFails) {
  EXPECT_EQ(request(kBlkTypeIn, 0, {{kData, 100, true}}), kBlkStatusIoErr);
}

TEST_F(BlkTest, GetIdReturnsTheConfiguredId) {
  EXPECT_EQ(request(kBlkTypeGetId, 0, {{kData, 20, true}}), kBlkStatusOk);
  EXPECT_STREQ(reinterpret_cast<char*>(guest_.ptr(kData)), "disk-7");
}

TEST_F(BlkTest, UnknownTypeIsUnsupported) { EXPECT_EQ(request(99, 0, {}), kBlkStatusUnsupp); }

TEST_F(BlkTest, WriteZeroesZeroesTheRangeWhereSupported) {
  if (!(blk_->features() & kBlkFeatureWriteZeroes)) GTEST_SKIP() << "no fallocate here";
  guest_.put(kData, VirtioBlkDiscardWriteZeroes{5, 2, 0});
  EXPECT_EQ(request(kBlkTypeWriteZeroes, 0, {{kData, 16}}), kBlkStatusOk);
  EXPECT_EQ(file_sector(5), std::vector<uint8_t>(512, 0));
  EXPECT_EQ(file_sector(6), std::vector<uint8_t>(512, 0));
  EXPECT_EQ(file_sector(7), std::vector<uint8_t>(512, 7));
}

TEST_F(BlkTest, DiscardWithUnmapFlagIsUnsupported) {
  if (!(blk_->features() & kBlkFeatureDiscard)) GTEST_SKIP() << "no hole punching here";
  guest_.put(kData, VirtioBlkDiscardWriteZeroes{5, 2, 1});
  EXPECT_EQ(request(kBlkTypeDiscard, 0, {{kData, 16}}), kBlkStatusUnsupp);
}

TEST_F(BlkTest, UnmappedDataBufferFailsTheRequestAndReportsAFault) {
  EXPECT_EQ(request(kBlkTypeIn, 0, {{0x40000000, 512, true}}), kBlkStatusIoErr);
  ASSERT_EQ(signals_.faults.size(), 1u);
  EXPECT_EQ(signals_.faults[0].iova, Iova(0x40000000));
  EXPECT_EQ(signals_.faults[0].access, iommu::Access::kWrite);
  EXPECT_TRUE(signals_.reset_reasons.empty());
}

TEST_F(BlkTest, ChainWithoutStatusByteNeedsReset) {
  guest_.put(kHdr, VirtioBlkOutHdr{kBlkTypeIn, 0, 0});
  driver_.add_chain({{kHdr, 16}});
  blk_->notify(0);
  EXPECT_EQ(signals_.reset_reasons.size(), 1u);
}

TEST(BlkOpenTest, MissingFileIsAnError) {
  EXPECT_FALSE(Blk::open({.path = "/nonexistent/disk.img"}).ok());
}

}  // namespace
}  // namespace ioasis::devices::virtio
