// The virtio-iommu device over real split rings: requests in, statuses and fault events out.
#include "devices/virtio/iommu_device.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "devices/virtio/testing/fake_driver.h"

namespace ioasis::devices::virtio_iommu {
namespace {

using virtio::testing::Buf;
using virtio::testing::FakeDriverQueue;
using virtio::testing::FakeGuest;

class RecordingSignals : public virtio::DeviceSignals {
 public:
  void used_buffers(uint16_t queue) override { used.push_back(queue); }
  void config_changed() override {}
  void needs_reset(const Error& why) override { resets.push_back(why.message()); }
  void dma_fault(const iommu::DmaFault&) override {}
  std::vector<uint16_t> used;
  std::vector<std::string> resets;
};

constexpr uint64_t kReqRing = FakeGuest::kBase;
constexpr uint64_t kEventRing = FakeGuest::kBase + 0x4000;
constexpr uint64_t kBufs = FakeGuest::kBase + 0x10000;
constexpr uint32_t kEndpoint = 0x08;

class ViommuDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto& ctx = guest_.context();
    endpoint_ = *ctx.join(
        iommu::DeviceSpec{"blk", std::nullopt, std::make_shared<iommu::SoftwareBackend>()});
    // The fake guest's address space stands in for guest RAM, with IOVA = GPA.
    GuestRamMap ram(
        {RamSlice{Gpa(FakeGuest::kBase),
                  iommu::HostRange{Hva::of(guest_.ptr(FakeGuest::kBase)), guest_.size()}}});
    auto engine = std::make_shared<IommuEngine>(ctx, guest_.ioas(), ram,
                                                EngineOptions{.bypass = false, .fault_backlog = 4});
    ASSERT_TRUE(engine->add_endpoint(kEndpoint, endpoint_).ok());
    device_ = std::make_unique<IommuDevice>(engine);
    queues_.emplace_back(IommuDevice::kRequestQueueSize);
    queues_.emplace_back(IommuDevice::kEventQueueSize);
    queues_[0].setup() = req_.setup();
    queues_[1].setup() = events_.setup();
    for (auto& q : queues_) q.start(false, false);
    dma_ = guest_.new_view();
    ASSERT_TRUE(device_
                    ->activate(virtio::Activation{device_->features() | kFVersion1, queues_,
                                                  dma_.get(), &signals_})
                    .ok());
  }

  // Sends `body` with a writable part of `writable` bytes; returns the used length.
  template <typename Body>
  uint32_t send(const Body& body, uint32_t writable = sizeof(ReqTail)) {
    guest_.put(kBufs, body);
    std::memset(guest_.ptr(kBufs + 0x1000), 0xcc, writable);
    req_.add_chain({Buf{kBufs, sizeof(Body)}, Buf{kBufs + 0x1000, writable, true}});
    device_->notify(kRequestQueue);
    EXPECT_EQ(req_.used_idx(), ++sent_);
    return req_.used(static_cast<uint16_t>(sent_ - 1)).len;
  }
  uint8_t status_at(uint64_t offset) { return *guest_.ptr(kBufs + 0x1000 + offset); }

  FakeGuest guest_;
  FakeDriverQueue req_{guest_, IommuDevice::kRequestQueueSize, kReqRing};
  FakeDriverQueue events_{guest_, IommuDevice::kEventQueueSize, kEventRing};
  iommu::DeviceId endpoint_;
  std::unique_ptr<IommuDevice> device_;
  std::vector<virtio::Queue> queues_;
  std::unique_ptr<iommu::DmaView> dma_;
  RecordingSignals signals_;
  uint16_t sent_ = 0;
};

TEST_F(ViommuDeviceTest, OffersTheIommuFeaturesAndLeavesVersion1ToTheTransport) {
  EXPECT_EQ(device_->type(), virtio::DeviceType::kIommu);
  EXPECT_EQ(device_->features() & kFVersion1, 0u);
  EXPECT_TRUE(device_->features() & kFMapUnmap);
  EXPECT_EQ(device_->queue_max_sizes().size(), 2u);
}

TEST_F(ViommuDeviceTest, AttachOverTheRequestQueueWritesAnOkTail) {
  AttachBody b{{kTAttach, {}}, 1, kEndpoint, 0, {}};
  EXPECT_EQ(send(b), sizeof(ReqTail));
  EXPECT_EQ(status_at(0), kSOk);
  EXPECT_EQ(status_at(1), 0) << "tail reserved bytes are zeroed";
  EXPECT_TRUE(device_->engine().domain_ioas(1).has_value());
  EXPECT_EQ(signals_.used, std::vector<uint16_t>{kRequestQueue});
}

TEST_F(ViommuDeviceTest, UnknownRequestTypeIsReturnedWithUsedLengthZero) {
  ReqHead h{0x7f, {}};
  EXPECT_EQ(send(h), 0u);
  EXPECT_EQ(status_at(0), 0xcc) << "the buffer is not written";
}

TEST_F(ViommuDeviceTest, ProbeFillsProbeSizeBytesThenTheTail) {
  uint32_t probe_size = device_->engine().config().probe_size;
  ProbeBody b{{kTProbe, {}}, kEndpoint, {}};
  EXPECT_EQ(send(b, probe_size + sizeof(ReqTail)), probe_size + sizeof(ReqTail));
  ProbeResvMem msi = guest_.get<ProbeResvMem>(kBufs + 0x1000);
  EXPECT_EQ(msi.head.type, kProbeTResvMem);
  EXPECT_EQ(msi.subtype, kResvMemTMsi);
  EXPECT_EQ(status_at(probe_size), kSOk);
  EXPECT_EQ(status_at(probe_size - 1), 0) << "padding after the properties is zeroed";
}

TEST_F(ViommuDeviceTest, ConfigReadsTheGeometryAndBypassIsTheOnlyWritableField) {
  uint64_t mask = 0;
  device_->read_config(0, std::span(reinterpret_cast<uint8_t*>(&mask), 8));
  EXPECT_EQ(mask, 0x201000u);
  uint8_t one = 1;
  device_->write_config(36, std::span(&one, 1));
  uint8_t bypass = 0xff;
  device_->read_config(36, std::span(&bypass, 1));
  EXPECT_EQ(bypass, 1);
  EXPECT_EQ(guest_.context().attached_to(endpoint_), guest_.ioas()) << "endpoint now bypasses";
  uint32_t probe = 0xdead;
  device_->write_config(32, std::span(reinterpret_cast<const uint8_t*>(&probe), 4));
  EXPECT_EQ(device_->engine().config().probe_size, 512u);
  uint8_t past_end[4] = {1, 1, 1, 1};
  device_->read_config(40, past_end);
  EXPECT_EQ(past_end[0] | past_end[3], 0);
}

TEST_F(ViommuDeviceTest, FaultEventWaitsForAnEventBufferAndIsWrittenIntoIt) {
  iommu::DmaFault fault{Iova(0x5000), iommu::Access::kWrite, iommu::FaultReason::kUnmapped};
  device_->engine().report_fault(kEndpoint, fault);
  device_->notify(kEventQueue);
  EXPECT_EQ(events_.used_idx(), 0) << "no buffer yet";

  events_.add_chain({Buf{kBufs + 0x8000, sizeof(FaultEvent), true}});
  device_->notify(kEventQueue);
  ASSERT_EQ(events_.used_idx(), 1);
  EXPECT_EQ(events_.used(0).len, sizeof(FaultEvent));
  FaultEvent ev = guest_.get<FaultEvent>(kBufs + 0x8000);
  EXPECT_EQ(ev.reason, kFaultRMapping);
  EXPECT_EQ(ev.flags, kFaultFWrite | kFaultFAddress);
  EXPECT_EQ(ev.endpoint, kEndpoint);
  EXPECT_EQ(ev.address, 0x5000u);
  EXPECT_EQ(signals_.used, std::vector<uint16_t>{kEventQueue});
}

TEST_F(ViommuDeviceTest, EventBufferTooSmallForAReportGoesBackEmpty) {
  events_.add_chain({Buf{kBufs + 0x8000, 8, true}});
  events_.add_chain({Buf{kBufs + 0x9000, sizeof(FaultEvent), true}});
  device_->engine().report_fault(kEndpoint, iommu::DmaFault{Iova(0x7000), iommu::Access::kRead,
                                                            iommu::FaultReason::kUnmapped});
  device_->notify(kEventQueue);
  ASSERT_EQ(events_.used_idx(), 2);
  EXPECT_EQ(events_.used(0).len, 0u);
  EXPECT_EQ(events_.used(1).len, sizeof(FaultEvent));
  EXPECT_EQ(guest_.get<FaultEvent>(kBufs + 0x9000).address, 0x7000u);
}

TEST_F(ViommuDeviceTest, MalformedRequestRingAsksForAReset) {
  req_.set_desc(0, virtio::VirtqDesc{kBufs, 16, virtio::kDescFlagNext, 0});  // loops on itself
  req_.publish(0);
  device_->notify(kRequestQueue);
  EXPECT_EQ(signals_.resets.size(), 1u);
  AttachBody b{{kTAttach, {}}, 1, kEndpoint, 0, {}};
  guest_.put(kBufs, b);
  device_->notify(kRequestQueue);
  EXPECT_FALSE(device_->engine().domain_ioas(1).has_value()) << "a stopped device does nothing";
}

TEST_F(ViommuDeviceTest, ResetDestroysDomainsAndStopsTheQueues) {
  AttachBody b{{kTAttach, {}}, 1, kEndpoint, 0, {}};
  ASSERT_EQ(send(b), sizeof(ReqTail));
  device_->reset();
  EXPECT_EQ(device_->engine().domain_count(), 0u);
  EXPECT_FALSE(guest_.context().attached_to(endpoint_).has_value());
}

}  // namespace
}  // namespace ioasis::devices::virtio_iommu
