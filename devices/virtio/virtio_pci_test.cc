#include "devices/virtio/virtio_pci.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <set>
#include <thread>

#include "devices/virtio/blk.h"
#include "devices/virtio/testing/fake_driver.h"
#include "devices/virtio/testing/fake_interrupts.h"

namespace ioasis::devices::virtio {
namespace {

using testing::Buf;
using testing::FakeDriverQueue;
using testing::FakeGuest;
using testing::FakeInterrupts;

constexpr uint64_t kRings = FakeGuest::kBase;
constexpr uint64_t kData = FakeGuest::kBase + 0x10000;
constexpr uint64_t kDeviceFeature = 1ull << 7;

// Copies what it reads from each chain into the chain's writable part.
class EchoDevice : public VirtioDevice {
 public:
  DeviceType type() const override { return DeviceType::kBlock; }
  uint64_t features() const override { return kDeviceFeature | kFeatureRingEventIdx; }
  std::vector<uint16_t> queue_max_sizes() const override { return {16, 8}; }
  void read_config(uint64_t offset, std::span<uint8_t> data) override {
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(0xa0 + offset + i);
  }
  void write_config(uint64_t, std::span<const uint8_t>) override {}
  Result<void> activate(const Activation& a) override {
    active = a;
    ++activations;
    return {};
  }
  void notify(uint16_t queue) override {
    ++notifications;
    Queue& q = active.queues[queue];
    for (;;) {
      auto chain = q.pop(*active.dma);
      if (!chain) return active.signals->needs_reset(chain.error());
      if (!chain->has_value()) break;
      std::vector<uint8_t> bytes((*chain)->readable_len);
      ChainReader reader(**chain, *active.dma);
      ChainWriter writer(**chain, *active.dma);
      (void)reader.read(bytes.data(), bytes.size());
      (void)writer.write(bytes.data(), std::min<uint64_t>(bytes.size(), writer.remaining()));
      (void)q.add_used(*active.dma, (*chain)->head, writer.written());
    }
    active.signals->used_buffers(queue);
  }
  void reset() override { ++resets; }

  Activation active;
  int activations = 0;
  int notifications = 0;
  int resets = 0;
};

class VirtioPciTest : public ::testing::Test {
 protected:
  void SetUp() override { make(false); }
  void make(bool behind_iommu) {
    device_ = std::make_shared<EchoDevice>();
    interrupts_ = FakeInterrupts();
    VirtioPciOptions o;
    o.interrupts = &interrupts_;
    o.dma = guest_.new_view();
    o.behind_iommu = behind_iommu;
    auto t = VirtioPci::create(device_, std::move(o));
    ASSERT_TRUE(t.ok()) << t.error().message();
    pci_ = *t;
  }
  uint64_t rd(uint64_t offset, size_t size) {
    uint64_t v = 0;
    pci_->bar_read(0, offset, std::span(reinterpret_cast<uint8_t*>(&v), size));
    return v;
  }
  void wr(uint64_t offset, uint64_t v, size_t size) {
    pci_->bar_write(0, offset, std::span(reinterpret_cast<const uint8_t*>(&v), size));
  }
  void status(uint8_t s) { wr(offsetof(VirtioPciCommonCfg, device_status), s, 1); }
  uint8_t status() {
    return static_cast<uint8_t>(rd(offsetof(VirtioPciCommonCfg, device_status), 1));
  }
  void write_features(uint64_t f) {
    wr(offsetof(VirtioPciCommonCfg, driver_feature_select), 0, 4);
    wr(offsetof(VirtioPciCommonCfg, driver_feature), f & 0xffffffff, 4);
    wr(offsetof(VirtioPciCommonCfg, driver_feature_select), 1, 4);
    wr(offsetof(VirtioPciCommonCfg, driver_feature), f >> 32, 4);
  }
  uint64_t offered() {
    wr(offsetof(VirtioPciCommonCfg, device_feature_select), 0, 4);
    uint64_t lo = rd(offsetof(VirtioPciCommonCfg, device_feature), 4);
    wr(offsetof(VirtioPciCommonCfg, device_feature_select), 1, 4);
    return lo | rd(offsetof(VirtioPciCommonCfg, device_feature), 4) << 32;
  }
  void setup_queue(uint16_t index, const QueueSetup& s) {
    wr(offsetof(VirtioPciCommonCfg, queue_select), index, 2);
    wr(offsetof(VirtioPciCommonCfg, queue_size), s.size, 2);
    wr(offsetof(VirtioPciCommonCfg, queue_desc), s.desc.value, 8);
    // 64-bit fields written as two halves, as drivers do (section 4.1.3.1).
    wr(offsetof(VirtioPciCommonCfg, queue_driver), s.avail.value & 0xffffffff, 4);
    wr(offsetof(VirtioPciCommonCfg, queue_driver) + 4, s.avail.value >> 32, 4);
    wr(offsetof(VirtioPciCommonCfg, queue_device), s.used.value, 8);
    wr(offsetof(VirtioPciCommonCfg, queue_msix_vector), index + 1u, 2);
    wr(offsetof(VirtioPciCommonCfg, queue_enable), 1, 2);
  }
  // Turns MSI-X on and unmasks every vector.
  void enable_msix() {
    uint16_t cap = static_cast<uint16_t>(pci_->config_read(pci::kCapabilitiesPointer) & 0xff);
    while (cap && (pci_->config_read(cap) & 0xff) != pci::kCapIdMsix) {
      cap = static_cast<uint16_t>((pci_->config_read(cap) >> 8) & 0xff);
    }
    ASSERT_NE(cap, 0);
    pci_->config_write(cap, uint32_t{Msix::kControlEnable} << 16, 0xc);
    for (uint64_t v = 0; v < 3; ++v) {
      wr(VirtioPci::kMsixTableOffset + v * 16, 0xfee00000, 4);
      wr(VirtioPci::kMsixTableOffset + v * 16 + 12, 0, 4);
    }
  }
  void bring_up(FakeDriverQueue& q) {
    status(kStatusAcknowledge | kStatusDriver);
    write_features(kFeatureVersion1 | kDeviceFeature);
    status(kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
    setup_queue(0, q.setup());
    status(kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);
  }

  FakeGuest guest_;
  FakeInterrupts interrupts_;
  std::shared_ptr<EchoDevice> device_;
  std::shared_ptr<VirtioPci> pci_;
};

TEST_F(VirtioPciTest, IdentifiesAsAModernVirtioFunction) {
  uint32_t ids = pci_->config_read(0);
  EXPECT_EQ(ids & 0xffff, 0x1af4u);
  EXPECT_EQ(ids >> 16, 0x1040u + 2);
  EXPECT_EQ(pci_->config_read(pci::kRevisionId) & 0xff, 1u);
  ASSERT_EQ(pci_->bars().size(), 1u);
  EXPECT_TRUE(pci_->bars()[0].is_64bit());
}

TEST_F(VirtioPciTest, CapabilitiesPointIntoTheBar) {
  std::map<uint8_t, std::pair<uint32_t, uint32_t>> caps;  // cfg_type -> offset, length
  uint16_t cap = static_cast<uint16_t>(pci_->config_read(pci::kCapabilitiesPointer) & 0xff);
  uint32_t multiplier = 0;
  while (cap) {
    uint32_t head = pci_->config_read(cap);
    if ((head & 0xff) == 0x09) {
      uint8_t type = static_cast<uint8_t>(head >> 24);
      EXPECT_EQ(pci_->config_read(cap + 4) & 0xff, 0u);  // BAR 0
      caps[type] = {pci_->config_read(cap + 8), pci_->config_read(cap + 12)};
      if (type == 2) multiplier = pci_->config_read(cap + 16);
    }
    cap = static_cast<uint16_t>((head >> 8) & 0xff);
  }
  ASSERT_EQ(caps.size(), 5u);
  EXPECT_EQ(caps[1].first, VirtioPci::kCommonOffset);
  EXPECT_EQ(caps[1].second, sizeof(VirtioPciCommonCfg));
  EXPECT_EQ(caps[2].first, VirtioPci::kNotifyOffset);
  EXPECT_EQ(caps[3].first, VirtioPci::kIsrOffset);
  EXPECT_EQ(caps[4].first, VirtioPci::kDeviceCfgOffset);
  EXPECT_EQ(multiplier, VirtioPci::kNotifyMultiplier);
}

TEST_F(VirtioPciTest, PciCfgCapabilityReachesTheBar) {
  uint16_t cap = static_cast<uint16_t>(pci_->config_read(pci::kCapabilitiesPointer) & 0xff);
  while (cap && pci_->config_read(cap) >> 24 != 5) {
    cap = static_cast<uint16_t>((pci_->config_read(cap) >> 8) & 0xff);
  }
  ASSERT_NE(cap, 0);
  // Write queue_select through the window, then read it back the same way.
  pci_->config_write(cap + 4, 0, 0x1);  // bar 0
  pci_->config_write(cap + 8, offsetof(VirtioPciCommonCfg, queue_select), 0xf);
  pci_->config_write(cap + 12, 2, 0xf);
  pci_->config_write(cap + 16, 1, 0xf);
  EXPECT_EQ(rd(offsetof(VirtioPciCommonCfg, queue_select), 2), 1u);
  EXPECT_EQ(pci_->config_read(cap + 16), 1u);
  pci_->config_write(cap + 12, 3, 0xf);  // not 1, 2 or 4 bytes: no access
  EXPECT_EQ(pci_->config_read(cap + 16), 0u);
}

TEST_F(VirtioPciTest, OffersDeviceFeaturesAndVersion1) {
  EXPECT_EQ(offered(), kDeviceFeature | kFeatureRingEventIdx | kFeatureVersion1);
  EXPECT_EQ(rd(offsetof(VirtioPciCommonCfg, num_queues), 2), 2u);
}

TEST_F(VirtioPciTest, FeaturesOkIsRefusedWithoutVersion1) {
  status(kStatusAcknowledge | kStatusDriver);
  write_features(kDeviceFeature);
  status(kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
  EXPECT_EQ(status() & kStatusFeaturesOk, 0);
}

TEST_F(VirtioPciTest, FeaturesOkIsRefusedForFeaturesNotOffered) {
  write_features(kFeatureVersion1 | (1ull << 20));
  status(kStatusFeaturesOk);
  EXPECT_EQ(status() & kStatusFeaturesOk, 0);
}

TEST_F(VirtioPciTest, FeaturesFreezeAtFeaturesOk) {
  write_features(kFeatureVersion1);
  status(kStatusFeaturesOk);
  ASSERT_NE(status() & kStatusFeaturesOk, 0);
  write_features(kFeatureVersion1 | kDeviceFeature);
  EXPECT_EQ(pci_->driver_features(), kFeatureVersion1);
}

TEST_F(VirtioPciTest, BehindTheIommuAccessPlatformIsOfferedAndRequired) {
  make(true);
  EXPECT_NE(offered() & kFeatureAccessPlatform, 0u);
  write_features(kFeatureVersion1);
  status(kStatusFeaturesOk);
  EXPECT_EQ(status() & kStatusFeaturesOk, 0);
  write_features(kFeatureVersion1 | kFeatureAccessPlatform);
  status(kStatusFeaturesOk);
  EXPECT_NE(status() & kStatusFeaturesOk, 0);
}

TEST_F(VirtioPciTest, DriverOkActivatesWithTheEnabledQueues) {
  FakeDriverQueue q(guest_, 16, kRings);
  bring_up(q);
  ASSERT_EQ(device_->activations, 1);
  EXPECT_EQ(device_->active.features, kFeatureVersion1 | kDeviceFeature);
  EXPECT_TRUE(device_->active.queues[0].ready());
  EXPECT_FALSE(device_->active.queues[1].ready());
}

TEST_F(VirtioPciTest, NotifyProcessesTheQueueAndRaisesItsVector) {
  enable_msix();
  FakeDriverQueue q(guest_, 16, kRings);
  bring_up(q);
  std::memcpy(guest_.ptr(kData), "ping", 4);
  q.add_chain({{kData, 4}, {kData + 0x100, 4, true}});
  wr(VirtioPci::kNotifyOffset + 0 * VirtioPci::kNotifyMultiplier, 0, 2);
  EXPECT_EQ(device_->notifications, 1);
  EXPECT_EQ(q.used_idx(), 1);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(guest_.ptr(kData + 0x100)), 4), "ping");
  EXPECT_EQ(interrupts_.routes[1]->triggers, 1);  // queue 0 was given vector 1
  EXPECT_EQ(rd(VirtioPci::kIsrOffset, 1), 1u);
  EXPECT_EQ(rd(VirtioPci::kIsrOffset, 1), 0u);  // reading clears it
}

TEST_F(VirtioPciTest, NotifyBeforeDriverOkIsIgnored) {
  wr(VirtioPci::kNotifyOffset, 0, 2);
  EXPECT_EQ(device_->notifications, 0);
}

TEST_F(VirtioPciTest, WritingZeroStatusResetsDeviceAndQueues) {
  FakeDriverQueue q(guest_, 16, kRings);
  bring_up(q);
  status(0);
  EXPECT_EQ(device_->resets, 1);
  EXPECT_EQ(status(), 0);
  EXPECT_EQ(pci_->driver_features(), 0u);
  wr(offsetof(VirtioPciCommonCfg, queue_select), 0, 2);
  EXPECT_EQ(rd(offsetof(VirtioPciCommonCfg, queue_enable), 2), 0u);
  EXPECT_EQ(rd(offsetof(VirtioPciCommonCfg, queue_size), 2), 16u);
  EXPECT_EQ(rd(offsetof(VirtioPciCommonCfg, queue_desc), 8), 0u);
  EXPECT_EQ(rd(offsetof(VirtioPciCommonCfg, queue_msix_vector), 2), kNoVector);
}

TEST_F(VirtioPciTest, MalformedChainSetsNeedsResetAndRaisesConfigInterrupt) {
  enable_msix();
  wr(offsetof(VirtioPciCommonCfg, config_msix_vector), 0, 2);
  FakeDriverQueue q(guest_, 16, kRings);
  bring_up(q);
  uint8_t generation = static_cast<uint8_t>(rd(offsetof(VirtioPciCommonCfg, config_generation), 1));
  q.set_desc(0, {kData, 4, kDescFlagNext, 0});  // loops on itself
  q.publish(0);
  wr(VirtioPci::kNotifyOffset, 0, 2);
  EXPECT_NE(status() & kStatusNeedsReset, 0);
  EXPECT_EQ(interrupts_.routes[0]->triggers, 1);
  EXPECT_NE(rd(offsetof(VirtioPciCommonCfg, config_generation), 1), generation);
  // A further notify does not reach the device until it is reset.
  wr(VirtioPci::kNotifyOffset, 0, 2);
  EXPECT_EQ(device_->notifications, 1);
}

TEST_F(VirtioPciTest, EnablingAQueueWithABadSizeNeedsReset) {
  QueueSetup s{12, Iova(kRings), Iova(kRings + 0x1000), Iova(kRings + 0x2000), true};
  setup_queue(0, s);
  EXPECT_NE(status() & kStatusNeedsReset, 0);
  EXPECT_EQ(rd(offsetof(VirtioPciCommonCfg, queue_enable), 2), 0u);
}

TEST_F(VirtioPciTest, VectorsBeyondTheTableReadBackAsNoVector) {
  wr(offsetof(VirtioPciCommonCfg, config_msix_vector), 7, 2);
  EXPECT_EQ(rd(offsetof(VirtioPciCommonCfg, config_msix_vector), 2), kNoVector);
}

TEST_F(VirtioPciTest, NonexistentQueueReadsAsSizeZero) {
  wr(offsetof(VirtioPciCommonCfg, queue_select), 5, 2);
  EXPECT_EQ(rd(offsetof(VirtioPciCommonCfg, queue_size), 2), 0u);
}

TEST_F(VirtioPciTest, DeviceConfigReachesTheDevice) {
  EXPECT_EQ(rd(VirtioPci::kDeviceCfgOffset + 2, 1), 0xa2u);
}

// A disk behind the virtio-iommu whose request points at an unmapped IOVA: the request fails
// with IOERR, nothing reaches the buffer, and the fault goes to the transport's reporter.
TEST_F(VirtioPciTest, DmaFaultOfADeviceReachesTheFaultReporter) {
  char path[] = "/tmp/ioasis-vpci-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 64 * 512), 0);
  ::close(fd);
  auto blk = Blk::open({.path = path, .queue_size = 16});
  ::unlink(path);
  ASSERT_TRUE(blk.ok());
  VirtioPciOptions o;
  o.interrupts = &interrupts_;
  o.dma = guest_.new_view();
  o.behind_iommu = true;
  auto t = VirtioPci::create(*blk, std::move(o));
  ASSERT_TRUE(t.ok());
  pci_ = *t;
  std::vector<iommu::DmaFault> faults;
  pci_->set_fault_reporter([&](const iommu::DmaFault& f) { faults.push_back(f); });

  FakeDriverQueue q(guest_, 16, kRings);
  status(kStatusAcknowledge | kStatusDriver);
  write_features(kFeatureVersion1 | kFeatureAccessPlatform);
  status(kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
  setup_queue(0, q.setup());
  status(kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);
  ASSERT_NE(status() & kStatusDriverOk, 0);

  guest_.put(kData, VirtioBlkOutHdr{kBlkTypeIn, 0, 0});
  guest_.put<uint8_t>(kData + 0x100, 0xff);
  q.add_chain({{kData, 16}, {0x7000000, 512, true}, {kData + 0x100, 1, true}});
  wr(VirtioPci::kNotifyOffset, 0, 2);
  EXPECT_EQ(guest_.get<uint8_t>(kData + 0x100), kBlkStatusIoErr);
  ASSERT_EQ(faults.size(), 1u);
  EXPECT_EQ(faults[0].iova, Iova(0x7000000));
  EXPECT_EQ(faults[0].access, iommu::Access::kWrite);
  EXPECT_EQ(status() & kStatusNeedsReset, 0);
}

class RecordingIoEvents : public IoEvents {
 public:
  struct Registration : IoEventRegistration {
    Registration(RecordingIoEvents& owner, uint64_t addr) : owner(owner), addr(addr) {
      owner.live.insert(addr);
    }
    ~Registration() override { owner.live.erase(addr); }
    RecordingIoEvents& owner;
    uint64_t addr;
  };
  Result<std::unique_ptr<IoEventRegistration>> add_mmio(int, uint64_t addr, uint32_t len) override {
    EXPECT_EQ(len, 2u);
    return std::unique_ptr<IoEventRegistration>(std::make_unique<Registration>(*this, addr));
  }
  std::set<uint64_t> live;
};

TEST_F(VirtioPciTest, DoorbellsFollowTheBar) {
  RecordingIoEvents ioevents;
  VirtioPciOptions o;
  o.interrupts = &interrupts_;
  o.dma = guest_.new_view();
  o.ioevents = &ioevents;
  pci_ = *VirtioPci::create(device_, std::move(o));
  pci_->bar_moved(0, 0, 0xc0000000);
  EXPECT_EQ(ioevents.live, (std::set<uint64_t>{0xc0003000, 0xc0003004}));
  pci_->bar_moved(0, 0xc0000000, 0xd0000000);
  EXPECT_EQ(ioevents.live, (std::set<uint64_t>{0xd0003000, 0xd0003004}));
  pci_->bar_moved(0, 0xd0000000, 0);
  EXPECT_TRUE(ioevents.live.empty());
}

TEST_F(VirtioPciTest, WithAControlLoopNotificationsRunThere) {
  boost::asio::io_context io;
  VirtioPciOptions o;
  o.interrupts = &interrupts_;
  o.dma = guest_.new_view();
  o.io = &io;
  pci_ = *VirtioPci::create(device_, std::move(o));
  FakeDriverQueue q(guest_, 16, kRings);
  bring_up(q);
  q.add_chain({{kData, 4}, {kData + 0x100, 4, true}});
  wr(VirtioPci::kNotifyOffset, 0, 2);
  EXPECT_EQ(device_->notifications, 0);  // queued, not run on the notifying thread
  io.poll();
  EXPECT_EQ(device_->notifications, 1);
  EXPECT_EQ(q.used_idx(), 1);
  // A kick from another thread is queued the same way.
  q.add_chain({{kData, 4}, {kData + 0x200, 4, true}});
  std::thread([&] { pci_->kick(0); }).join();
  EXPECT_EQ(device_->notifications, 1);
  io.poll();
  EXPECT_EQ(device_->notifications, 2);
  EXPECT_EQ(q.used_idx(), 2);
  pci_.reset();  // the watchers go with the transport, while the loop still exists
  io.poll();
}

}  // namespace
}  // namespace ioasis::devices::virtio
