// The client against our DMA engine server over a real UNIX socket: the server runs on a thread
// of this process, or as the vfio-user-dma-server binary.
#include "devices/vfio/vfio_user_client.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/eventfd.h>

#include "devices/vfio/vfio_user_test_util.h"

namespace ioasis::devices::vfio_user {
namespace {

using namespace testing;
using iommu::Perm;

constexpr uint64_t kRam = 4 << 20;

class VfioUserClientTest : public ::testing::Test {
 protected:
  void SetUp() override { start_server({}); }

  void start_server(DmaEngineOptions device) {
    client_.reset();
    server_.reset();
    ServerOptions options;
    options.socket_path =
        temp_socket(::testing::UnitTest::GetInstance()->current_test_info()->name());
    options.device = device;
    auto server = VfioUserServer::create(options);
    ASSERT_TRUE(server.ok()) << server.error().message();
    server_ = std::move(*server);
    server_->start();
    auto client = VfioUserClient::connect(options.socket_path);
    ASSERT_TRUE(client.ok()) << client.error().message();
    client_ = std::move(*client);
  }

  std::unique_ptr<VfioUserServer> server_;
  std::unique_ptr<VfioUserClient> client_;
  Memfd ram_ = Memfd::create(kRam);
};

TEST_F(VfioUserClientTest, VersionNegotiationReportsServerCapabilities) {
  EXPECT_EQ(client_->server_capabilities().max_data_xfer_size, kMaxDataXferSize);
  EXPECT_EQ(client_->server_capabilities().max_msg_fds, kMaxMsgFds);
  EXPECT_EQ(client_->server_capabilities().pgsizes, std::optional<uint64_t>(4096));
  EXPECT_EQ(client_->device_info().num_regions, uint32_t{VFIO_PCI_NUM_REGIONS});
  EXPECT_EQ(client_->device_info().num_irqs, uint32_t{VFIO_PCI_NUM_IRQS});
  EXPECT_TRUE(client_->device_info().flags & VFIO_DEVICE_FLAGS_RESET);
}

TEST_F(VfioUserClientTest, RegisterBarIsTrappedAndScratchBarComesWithAnMmappableFd) {
  auto bar0 = client_->region(VFIO_PCI_BAR0_REGION_INDEX);
  ASSERT_TRUE(bar0.ok()) << bar0.error().message();
  EXPECT_EQ(bar0->info.size, dma_engine::kBar0Size);
  EXPECT_FALSE(bar0->info.mmappable());
  EXPECT_FALSE(bar0->fd.valid());

  auto bar2 = client_->region(VFIO_PCI_BAR2_REGION_INDEX);
  ASSERT_TRUE(bar2.ok()) << bar2.error().message();
  ASSERT_TRUE(bar2->info.mmappable());
  ASSERT_TRUE(bar2->fd.valid());
  ASSERT_EQ(bar2->info.mmap_areas.size(), 1u);
  EXPECT_EQ(bar2->info.mmap_areas[0].size, dma_engine::kBar2Size);
  auto map = MappedRegion::map(bar2->info.size, PROT_READ | PROT_WRITE, MAP_SHARED, bar2->fd.get(),
                               static_cast<off_t>(bar2->info.mmap_offset));
  ASSERT_TRUE(map.ok());
  std::memcpy(map->data() + 0x10, "mmapped", 8);
  char back[8] = {};
  ASSERT_TRUE(
      client_->region_read(VFIO_PCI_BAR2_REGION_INDEX, 0x10, {reinterpret_cast<uint8_t*>(back), 8})
          .ok());
  EXPECT_STREQ(back, "mmapped");

  auto missing = client_->region(VFIO_PCI_ROM_REGION_INDEX);
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->info.size, 0u);
}

TEST_F(VfioUserClientTest, ConfigSpaceCarriesIdsAndMsixAndTakesCommandWrites) {
  uint8_t config[64];
  ASSERT_TRUE(client_->region_read(VFIO_PCI_CONFIG_REGION_INDEX, 0, config).ok());
  EXPECT_EQ(config[0] | config[1] << 8, dma_engine::kVendorId);
  EXPECT_EQ(config[2] | config[3] << 8, dma_engine::kDeviceId);
  uint8_t cap = config[0x34];
  uint8_t cap_id = 0;
  ASSERT_TRUE(client_->region_read(VFIO_PCI_CONFIG_REGION_INDEX, cap, {&cap_id, 1}).ok());
  EXPECT_EQ(cap_id, 0x11);  // MSI-X

  uint16_t command = 0x0006;  // memory space and bus master
  ASSERT_TRUE(
      client_
          ->region_write(VFIO_PCI_CONFIG_REGION_INDEX, 4, {reinterpret_cast<uint8_t*>(&command), 2})
          .ok());
  uint16_t back = 0;
  ASSERT_TRUE(
      client_->region_read(VFIO_PCI_CONFIG_REGION_INDEX, 4, {reinterpret_cast<uint8_t*>(&back), 2})
          .ok());
  EXPECT_EQ(back, 0x0006);

  auto irq = client_->irq_info(VFIO_PCI_MSIX_IRQ_INDEX);
  ASSERT_TRUE(irq.ok());
  EXPECT_EQ(irq->count, 1u);
  EXPECT_TRUE(irq->flags & VFIO_IRQ_INFO_EVENTFD);
}

TEST_F(VfioUserClientTest, IsolationGroupIsAbsentUnlessDeclared) {
  auto none = client_->isolation_group();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  start_server(DmaEngineOptions{42});
  auto group = client_->isolation_group();
  ASSERT_TRUE(group.ok());
  EXPECT_EQ(*group, std::optional<uint64_t>(42));
}

TEST_F(VfioUserClientTest, CopyBetweenMappedIovasLandsInGuestMemoryAndRaisesMsix) {
  auto irq = EventFd::create(EFD_NONBLOCK);
  ASSERT_TRUE(irq.ok());
  int fds[] = {irq->fd()};
  ASSERT_TRUE(client_->set_irqs(VFIO_PCI_MSIX_IRQ_INDEX, 0, fds).ok());
  ASSERT_TRUE(client_->dma_map(Iova(0x100000), ram_.range(0, 1 << 20), Perm::kRead).ok());
  ASSERT_TRUE(
      client_->dma_map(Iova(0x200000), ram_.range(1 << 20, 1 << 20), Perm::kReadWrite).ok());
  for (int i = 0; i < 4096; ++i) *ram_.at(0x40 + i) = static_cast<uint8_t>(i * 7);

  ASSERT_TRUE(start_copy(*client_, 0x100040, 0x200080, 4096).ok());
  pollfd p{irq->fd(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1) << "no MSI-X on completion";
  EXPECT_EQ(*irq->consume(), 1u);
  EXPECT_EQ(*read_status(*client_), status_of(DmaState::kDone));
  EXPECT_EQ(std::memcmp(ram_.at(0x40), ram_.at((1 << 20) + 0x80), 4096), 0);
  EXPECT_EQ(*ram_.at((1 << 20) + 0x7f), 0);  // the byte before the destination is untouched
}

TEST_F(VfioUserClientTest, CopyToUnmappedIovaFailsAndTouchesNoMemory) {
  ASSERT_TRUE(client_->dma_map(Iova(0x100000), ram_.range(0, 1 << 20), Perm::kReadWrite).ok());
  std::memset(ram_.at(0), 0xab, 4096);
  std::vector<uint8_t> before(ram_.at(0), ram_.at(0) + kRam);
  // The destination starts inside the mapping and runs past its end.
  ASSERT_TRUE(start_copy(*client_, 0x100000, 0x1ff800, 4096).ok());
  EXPECT_EQ(*wait_idle(*client_), status_of(DmaState::kError, DmaError::kDstUnmapped));
  ASSERT_TRUE(start_copy(*client_, 0x900000, 0x100000, 16).ok());
  EXPECT_EQ(*wait_idle(*client_), status_of(DmaState::kError, DmaError::kSrcUnmapped));
  EXPECT_EQ(std::memcmp(before.data(), ram_.at(0), kRam), 0);
}

TEST_F(VfioUserClientTest, CopyIntoReadOnlyMappingFails) {
  ASSERT_TRUE(client_->dma_map(Iova(0x100000), ram_.range(0, 1 << 20), Perm::kRead).ok());
  ASSERT_TRUE(start_copy(*client_, 0x100000, 0x100800, 16).ok());
  EXPECT_EQ(*wait_idle(*client_), status_of(DmaState::kError, DmaError::kDstReadOnly));
}

TEST_F(VfioUserClientTest, CopyAfterUnmapFails) {
  ASSERT_TRUE(client_->dma_map(Iova(0x100000), ram_.range(0, 1 << 20), Perm::kReadWrite).ok());
  ASSERT_TRUE(start_copy(*client_, 0x100000, 0x180000, 64).ok());
  EXPECT_EQ(*wait_idle(*client_), status_of(DmaState::kDone));
  ASSERT_TRUE(client_->dma_unmap(Iova(0x100000), 1 << 20).ok());
  ASSERT_TRUE(start_copy(*client_, 0x100000, 0x180000, 64).ok());
  EXPECT_EQ(*wait_idle(*client_), status_of(DmaState::kError, DmaError::kSrcUnmapped));
}

TEST_F(VfioUserClientTest, OverlappingMapAndInexactUnmapAreRefusedWithoutFailingTheClient) {
  ASSERT_TRUE(client_->dma_map(Iova(0x100000), ram_.range(0, 1 << 20), Perm::kReadWrite).ok());
  auto overlap = client_->dma_map(Iova(0x180000), ram_.range(0, 1 << 20), Perm::kReadWrite);
  ASSERT_FALSE(overlap.ok());
  EXPECT_EQ(overlap.error().sys_errno(), EEXIST);
  EXPECT_FALSE(client_->dma_unmap(Iova(0x100000), 4096).ok());
  EXPECT_FALSE(client_->failed());
}

TEST_F(VfioUserClientTest, MemoryWithoutFdIsReachedThroughDmaReadAndWrite) {
  std::vector<uint8_t> src(8192), dst(8192, 0);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i ^ 0x5a);
  ASSERT_TRUE(
      client_->dma_map(Iova(0x10000), {Hva::of(src.data()), src.size(), -1, 0}, Perm::kRead).ok());
  ASSERT_TRUE(
      client_->dma_map(Iova(0x20000), {Hva::of(dst.data()), dst.size(), -1, 0}, Perm::kReadWrite)
          .ok());
  ASSERT_TRUE(start_copy(*client_, 0x10000, 0x20000, 8192).ok());
  EXPECT_EQ(*wait_idle(*client_), status_of(DmaState::kDone));
  EXPECT_EQ(src, dst);
}

TEST_F(VfioUserClientTest, ResetClearsTheRegisters) {
  ASSERT_TRUE(start_copy(*client_, 0x1000, 0x2000, 16).ok());  // fails: nothing mapped
  ASSERT_TRUE(wait_idle(*client_).ok());
  ASSERT_TRUE(client_->reset().ok());
  uint64_t src = 1;
  ASSERT_TRUE(client_
                  ->region_read(VFIO_PCI_BAR0_REGION_INDEX, dma_engine::kRegSrc,
                                {reinterpret_cast<uint8_t*>(&src), 8})
                  .ok());
  EXPECT_EQ(src, 0u);
  EXPECT_EQ(*read_status(*client_), status_of(DmaState::kIdle));
}

TEST_F(VfioUserClientTest, OutOfRangeRegionAccessIsAnErrorReplyNotAFailure) {
  uint8_t byte;
  EXPECT_FALSE(
      client_->region_read(VFIO_PCI_BAR0_REGION_INDEX, dma_engine::kBar0Size, {&byte, 1}).ok());
  EXPECT_FALSE(client_->failed());
}

class VfioUserServerProcessTest : public ::testing::Test {};

TEST_F(VfioUserServerProcessTest, TwoFunctionsOfOneProcessShareTheDeclaredGroup) {
  std::string sock = temp_socket("proc-two");
  ServerProcess server(VFIO_USER_DMA_SERVER_BIN, sock, {"--group", "7", "--functions", "2"});
  ASSERT_TRUE(server.wait_listening(sock + ".1", std::chrono::seconds(10)));
  auto f0 = VfioUserClient::connect(sock);
  auto f1 = VfioUserClient::connect(sock + ".1");
  ASSERT_TRUE(f0.ok() && f1.ok());
  EXPECT_EQ(*(*f0)->isolation_group(), std::optional<uint64_t>(7));
  EXPECT_EQ(*(*f1)->isolation_group(), std::optional<uint64_t>(7));

  Memfd ram = Memfd::create(kRam);
  std::memset(ram.at(0), 0x11, 512);
  ASSERT_TRUE((*f1)->dma_map(Iova(0), ram.range(0, kRam), Perm::kReadWrite).ok());
  ASSERT_TRUE(start_copy(**f1, 0, 0x1000, 512).ok());
  EXPECT_EQ(*wait_idle(**f1), status_of(DmaState::kDone));
  EXPECT_EQ(*ram.at(0x1000 + 511), 0x11);
  // Function 0 has no mappings of its own: the same copy fails there.
  ASSERT_TRUE(start_copy(**f0, 0, 0x1000, 512).ok());
  EXPECT_EQ(*wait_idle(**f0), status_of(DmaState::kError, DmaError::kSrcUnmapped));
}

}  // namespace
}  // namespace ioasis::devices::vfio_user
