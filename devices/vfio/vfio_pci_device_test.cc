// VfioPciDevice over a vfio-user client talking to the DMA engine server: the guest's view of a
// passthrough function.
#include "devices/vfio/vfio_pci_device.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/eventfd.h>

#include <map>

#include "devices/eventfd_interrupts_test_util.h"
#include "devices/pci/pci_regs.h"
#include "devices/vfio/vfio_user_test_util.h"

namespace ioasis::devices {
namespace {

using namespace vfio_user;
using namespace vfio_user::testing;
using devices::testing::EventFdLine;
using devices::testing::EventFdRoute;
using devices::testing::Interrupts;
using namespace std::chrono_literals;

// Where the device put memory into the guest map, by guest-physical address.
class RecordingMapper : public DeviceMemoryMapper {
 public:
  struct Placed {
    std::span<uint8_t> host;
    bool writable;
  };
  Result<std::unique_ptr<GuestMapping>> map(Gpa gpa, std::span<uint8_t> host,
                                            bool writable) override {
    placed[gpa.value] = {host, writable};
    return std::unique_ptr<GuestMapping>(new Mapping(this, gpa.value));
  }
  std::map<uint64_t, Placed> placed;

 private:
  struct Mapping : GuestMapping {
    Mapping(RecordingMapper* m, uint64_t gpa) : mapper(m), gpa(gpa) {}
    ~Mapping() override { mapper->placed.erase(gpa); }
    RecordingMapper* mapper;
    uint64_t gpa;
  };
};

class VfioPciDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override { start({}); }
  void start(VfioPciOptions device_options, DmaEngineOptions engine = {}) {
    device_.reset();
    client_.reset();
    server_.reset();
    ServerOptions options;
    options.device = engine;
    options.socket_path =
        temp_socket(::testing::UnitTest::GetInstance()->current_test_info()->name());
    server_ = std::move(*VfioUserServer::create(options));
    server_->start();
    client_ =
        std::shared_ptr<VfioUserClient>(std::move(*VfioUserClient::connect(options.socket_path)));
    auto device = VfioPciDevice::create("test", client_, interrupts_, std::move(device_options));
    ASSERT_TRUE(device.ok()) << device.error().message();
    device_ = std::move(*device);
  }
  uint16_t find_cap(uint8_t id) {
    uint16_t at = device_->config_read(pci::kCapabilitiesPointer) & 0xfc;
    while (at && (device_->config_read(at) & 0xff) != id) {
      at = device_->config_read(at) >> 8 & 0xfc;
    }
    return at;
  }
  uint16_t msix_cap() { return find_cap(pci::kCapIdMsix); }
  void bar0_write(uint64_t offset, uint64_t value, size_t size) {
    device_->bar_write(0, offset, {reinterpret_cast<const uint8_t*>(&value), size});
  }
  uint32_t bar0_read32(uint64_t offset) {
    uint32_t v = 0;
    device_->bar_read(0, offset, {reinterpret_cast<uint8_t*>(&v), 4});
    return v;
  }

  // Runs the control loop until `done` holds or five seconds pass.
  bool run_until(const std::function<bool()>& done) {
    auto end = std::chrono::steady_clock::now() + 5s;
    while (!done() && std::chrono::steady_clock::now() < end) io_.run_one_for(10ms);
    return done();
  }
  void copy(uint64_t src, uint64_t dst) {
    bar0_write(dma_engine::kRegSrc, src, 8);
    bar0_write(dma_engine::kRegDst, dst, 8);
    bar0_write(dma_engine::kRegLength, 16, 4);
    bar0_write(dma_engine::kRegDoorbell, 1, 4);
  }

  boost::asio::io_context io_;
  Interrupts interrupts_;
  std::unique_ptr<VfioUserServer> server_;
  std::shared_ptr<VfioUserClient> client_;
  std::unique_ptr<VfioPciDevice> device_;
};

TEST_F(VfioPciDeviceTest, IdentityPassesThroughAndBarsFollowTheRegions) {
  EXPECT_EQ(device_->config_read(0), dma_engine::kVendorId | dma_engine::kDeviceId << 16);
  auto bars = device_->bars();
  ASSERT_EQ(bars.size(), 2u);
  EXPECT_EQ(bars[0].index, 0);
  EXPECT_EQ(bars[0].size, dma_engine::kBar0Size);
  EXPECT_EQ(bars[1].index, 2);
  EXPECT_EQ(bars[1].size, dma_engine::kBar2Size);
}

TEST_F(VfioPciDeviceTest, BarRegistersAreEmulatedAndAnswerSizing) {
  device_->config_write(pci::kBar0, 0xffffffff, 0xf);
  EXPECT_EQ(device_->config_read(pci::kBar0), ~uint32_t(dma_engine::kBar0Size - 1));
  device_->config_write(pci::kBar0, 0xfe000000, 0xf);
  EXPECT_EQ(device_->config_read(pci::kBar0), 0xfe000000u);
  // The device's own BAR register never saw the guest's value.
  uint32_t raw = 0;
  ASSERT_TRUE(client_
                  ->region_read(VFIO_PCI_CONFIG_REGION_INDEX, pci::kBar0,
                                {reinterpret_cast<uint8_t*>(&raw), 4})
                  .ok());
  EXPECT_NE(raw, 0xfe000000u);
}

TEST_F(VfioPciDeviceTest, EnablingMsixHandsTheRouteEventfdToTheDeviceWhichFiresItOnCompletion) {
  ASSERT_NE(device_->msix(), nullptr);
  ASSERT_EQ(interrupts_.routes.size(), 1u);
  uint16_t cap = msix_cap();
  ASSERT_NE(cap, 0);
  // The table is ours: the guest's message lands in the route, not in the device.
  bar0_write(dma_engine::kMsixTable, 0xfee00000, 4);
  bar0_write(dma_engine::kMsixTable + 8, 0x41, 4);
  bar0_write(dma_engine::kMsixTable + 12, 0, 4);  // unmask
  device_->config_write(cap, uint32_t{Msix::kControlEnable} << 16, 0xc);
  EXPECT_TRUE(device_->config_read(cap) >> 16 & Msix::kControlEnable);
  EXPECT_EQ(interrupts_.routes[0]->message.data, 0x41u);
  EXPECT_FALSE(interrupts_.routes[0]->masked);

  Memfd ram = Memfd::create(1 << 20);
  std::memcpy(ram.at(0), "passthrough", 12);
  ASSERT_TRUE(client_->dma_map(Iova(0), ram.range(0, 1 << 20), iommu::Perm::kReadWrite).ok());
  bar0_write(dma_engine::kRegSrc, 0, 8);
  bar0_write(dma_engine::kRegDst, 0x1000, 8);
  bar0_write(dma_engine::kRegLength, 12, 4);
  bar0_write(dma_engine::kRegDoorbell, 1, 4);
  pollfd p{interrupts_.routes[0]->eventfd(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  EXPECT_EQ(bar0_read32(dma_engine::kRegStatus), status_of(DmaState::kDone));
  EXPECT_STREQ(reinterpret_cast<char*>(ram.at(0x1000)), "passthrough");
}

TEST_F(VfioPciDeviceTest, MmappableBarEntersTheGuestMapWhereItDecodesAndLeavesWhenItStops) {
  RecordingMapper mapper;
  auto created = VfioPciDevice::create("direct", client_, interrupts_, {.mapper = &mapper});
  ASSERT_TRUE(created.ok()) << created.error().message();
  auto& d = *created;
  // BAR0 holds the registers and the MSI-X table and is not mmappable: it stays trapped.
  d->bar_moved(0, 0, 0xc0000000);
  EXPECT_TRUE(mapper.placed.empty());

  d->bar_moved(2, 0, 0xc0002000);
  ASSERT_EQ(mapper.placed.count(0xc0002000), 1u);
  auto host = mapper.placed[0xc0002000].host;
  EXPECT_EQ(host.size(), dma_engine::kBar2Size);
  EXPECT_TRUE(mapper.placed[0xc0002000].writable);
  EXPECT_EQ(d->direct_bytes(2), dma_engine::kBar2Size);

  // A guest store there lands in the device's own memory, with no message to the server.
  uint32_t sum = 0;
  for (uint32_t i = 0; i < host.size() / 4; ++i) {
    uint32_t word = i * 2654435761u;
    std::memcpy(host.data() + i * 4, &word, 4);
    sum += word;
  }
  auto read32 = [&](uint64_t reg) {
    uint32_t v = 0;
    d->bar_read(0, reg, {reinterpret_cast<uint8_t*>(&v), 4});
    return v;
  };
  EXPECT_EQ(read32(dma_engine::kRegBar2Sum), sum);
  EXPECT_EQ(read32(dma_engine::kRegBar2Trapped), 0u);

  d->bar_moved(2, 0xc0002000, 0xd0000000);
  EXPECT_EQ(mapper.placed.count(0xc0002000), 0u);
  EXPECT_EQ(mapper.placed.count(0xd0000000), 1u);
  d->bar_moved(2, 0xd0000000, 0);
  EXPECT_TRUE(mapper.placed.empty());
  EXPECT_EQ(d->direct_bytes(2), 0u);
  // Trapped accesses still work and are counted by the device.
  uint32_t word = 0;
  d->bar_read(2, 4, {reinterpret_cast<uint8_t*>(&word), 4});
  EXPECT_EQ(word, 2654435761u);
  EXPECT_EQ(read32(dma_engine::kRegBar2Trapped), 1u);
}

// The route's eventfd counter: how many interrupts the device (or the PBA replay) raised.
uint64_t take(int eventfd) {
  uint64_t n = 0;
  return ::read(eventfd, &n, sizeof(n)) == sizeof(n) ? n : 0;
}

TEST_F(VfioPciDeviceTest, EachFaultingCopyFiresTheFaultCallbackOnce) {
  int faults = 0;
  start({.io = &io_, .on_dma_fault = [&] { faults++; }});
  Memfd ram = Memfd::create(1 << 20);
  ASSERT_TRUE(client_->dma_map(Iova(0), ram.range(0, 1 << 20), iommu::Perm::kReadWrite).ok());
  ASSERT_TRUE(client_->dma_map(Iova(4 << 20), ram.range(0, 4096), iommu::Perm::kRead).ok());
  uint64_t completions = 0;
  auto finished = [&] {
    uint32_t lo = bar0_read32(dma_engine::kRegCompletions);
    return lo > completions;
  };
  auto copy_and_wait = [&](uint64_t src, uint64_t dst) {
    copy(src, dst);
    ASSERT_TRUE(run_until(finished));
    completions++;
  };
  copy_and_wait(0, 0x1000);        // fine
  copy_and_wait(2 << 20, 0x1000);  // source unmapped
  copy_and_wait(0, 4 << 20);       // destination read-only
  ASSERT_TRUE(run_until([&] { return faults >= 2; }));
  io_.run_for(50ms);
  EXPECT_EQ(faults, 2);
}

TEST_F(VfioPciDeviceTest, WithoutACallbackTheErrorIrqStaysDisconnected) {
  start({.io = &io_});
  Memfd ram = Memfd::create(1 << 20);
  ASSERT_TRUE(client_->dma_map(Iova(0), ram.range(0, 1 << 20), iommu::Perm::kReadWrite).ok());
  copy(2 << 20, 0);
  ASSERT_TRUE(run_until([&] { return bar0_read32(dma_engine::kRegCompletions) == 1; }));
  io_.run_for(20ms);  // nothing to watch, nothing to crash
  EXPECT_EQ(bar0_read32(dma_engine::kRegStatus),
            status_of(DmaState::kError, DmaError::kSrcUnmapped));
}

class VfioPciPbaTest : public VfioPciDeviceTest {
 protected:
  void SetUp() override {
    start({.io = &io_});
    ram_ = Memfd::create(1 << 20);
    ASSERT_TRUE(client_->dma_map(Iova(0), ram_.range(0, 1 << 20), iommu::Perm::kReadWrite).ok());
    bar0_write(dma_engine::kMsixTable, 0xfee00000, 4);
    bar0_write(dma_engine::kMsixTable + 8, 0x41, 4);
    cap_ = msix_cap();
  }
  void mask_vector(bool masked) { bar0_write(dma_engine::kMsixTable + 12, masked ? 1 : 0, 4); }
  void set_control(uint16_t control) { device_->config_write(cap_, uint32_t{control} << 16, 0xc); }
  bool pba_bit() { return bar0_read32(dma_engine::kMsixPba) & 1; }
  int route_fd() { return interrupts_.routes[0]->eventfd(); }
  // A copy while masked: it completes, the control loop sees the redirected signal.
  void masked_copy() {
    uint32_t before = bar0_read32(dma_engine::kRegCompletions);
    copy(0, 0x1000);
    ASSERT_TRUE(run_until([&] { return bar0_read32(dma_engine::kRegCompletions) == before + 1; }));
    // The engine signals just after it counts the completion; let the loop see that signal.
    ASSERT_TRUE(run_until([&] { return device_->msix()->pending(0); }));
    io_.run_for(20ms);
  }

  Memfd ram_;
  uint16_t cap_ = 0;
};

TEST_F(VfioPciPbaTest, MaskedVectorSetsThePbaBitAndUnmaskDeliversItOnce) {
  mask_vector(true);
  set_control(Msix::kControlEnable);
  masked_copy();
  masked_copy();
  EXPECT_TRUE(pba_bit());
  EXPECT_EQ(take(route_fd()), 0u) << "a masked vector reaches no irqfd";

  mask_vector(false);
  EXPECT_FALSE(pba_bit());
  EXPECT_EQ(take(route_fd()), 1u) << "two held-back completions make one interrupt";

  // Unmasked, the device signals the irqfd itself again: no control loop involved.
  copy(0, 0x1000);
  pollfd p{route_fd(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  EXPECT_EQ(take(route_fd()), 1u);
  EXPECT_FALSE(pba_bit());
}

TEST_F(VfioPciPbaTest, FunctionMaskHoldsBackLikeTheVectorMask) {
  mask_vector(false);
  set_control(Msix::kControlEnable | Msix::kControlFunctionMask);
  masked_copy();
  EXPECT_TRUE(pba_bit());
  EXPECT_EQ(take(route_fd()), 0u);
  set_control(Msix::kControlEnable);
  EXPECT_FALSE(pba_bit());
  EXPECT_EQ(take(route_fd()), 1u);
}

TEST_F(VfioPciPbaTest, MaskingAfterEnableRedirectsTheVector) {
  mask_vector(false);
  set_control(Msix::kControlEnable);
  mask_vector(true);
  masked_copy();
  EXPECT_TRUE(pba_bit());
  EXPECT_EQ(take(route_fd()), 0u);
  // Disabling MSI-X forgets nothing the guest can see afterwards: reset clears the PBA.
  device_->reset();
  EXPECT_FALSE(pba_bit());
}

TEST_F(VfioPciDeviceTest, IntxIsALevelTheGuestAcknowledgesAndFiresOncePerEoi) {
  start({.io = &io_}, {.intx = true});
  EXPECT_EQ(device_->msix(), nullptr);
  ASSERT_EQ(device_->intx_pin(), 1);
  EXPECT_EQ(device_->config_read(pci::kInterruptLine) >> 8 & 0xff, 1u) << "pin INTA";
  ASSERT_TRUE(device_->connect_intx(interrupts_, 17).ok());
  ASSERT_EQ(interrupts_.lines.size(), 1u);
  EventFdLine& line = *interrupts_.lines[0];
  EXPECT_EQ(line.gsi, 17u);
  EXPECT_EQ(device_->config_read(pci::kInterruptLine) & 0xff, 17u);

  Memfd ram = Memfd::create(1 << 20);
  ASSERT_TRUE(client_->dma_map(Iova(0), ram.range(0, 1 << 20), iommu::Perm::kReadWrite).ok());
  auto completions = [&] { return bar0_read32(dma_engine::kRegCompletions); };
  auto eoi = [&] { ASSERT_TRUE(line.resample.signal().ok()); };
  pollfd p{line.trigger_eventfd(), POLLIN, 0};
  auto fired = [&] { return run_until([&] { return ::poll(&p, 1, 0) == 1; }); };
  auto quiet = [&] {
    io_.run_for(20ms);
    return take(line.trigger_eventfd()) == 0;
  };

  copy(0, 0x1000);
  ASSERT_TRUE(fired());
  EXPECT_EQ(take(line.trigger_eventfd()), 1u);
  EXPECT_EQ(bar0_read32(dma_engine::kRegIntStatus), 1u);
  // Not acknowledged: the line is still asserted, so the EOI alone makes it fire again.
  eoi();
  ASSERT_TRUE(fired());
  EXPECT_EQ(take(line.trigger_eventfd()), 1u);
  // Acknowledged, then EOI: nothing more.
  bar0_write(dma_engine::kRegIntStatus, 1, 4);
  EXPECT_EQ(bar0_read32(dma_engine::kRegIntStatus), 0u);
  eoi();
  EXPECT_TRUE(quiet());

  // Unmasked by that EOI, the next completion fires at once; one that comes while INTx is
  // automasked waits for the EOI.
  copy(0, 0x1000);
  ASSERT_TRUE(fired());
  EXPECT_EQ(take(line.trigger_eventfd()), 1u);
  bar0_write(dma_engine::kRegIntStatus, 1, 4);
  copy(0, 0x1000);
  ASSERT_TRUE(run_until([&] { return completions() == 3; }));
  EXPECT_TRUE(quiet());
  eoi();
  ASSERT_TRUE(fired());
  EXPECT_EQ(take(line.trigger_eventfd()), 1u);
}

TEST_F(VfioPciDeviceTest, MsiIsEmulatedAndItsEnabledVectorGoesToTheDevice) {
  interrupts_.routes.clear();  // the fixture's default device's
  start({}, {.msi = true});
  EXPECT_EQ(device_->msix(), nullptr);
  ASSERT_NE(device_->msi(), nullptr);
  uint16_t cap = find_cap(pci::kCapIdMsi);
  ASSERT_EQ(cap, device_->msi()->offset());
  ASSERT_EQ(interrupts_.routes.size(), 1u);  // one vector capable
  EXPECT_TRUE(device_->config_read(cap) >> 16 & pci::kMsiControl64Bit);

  device_->config_write(cap + pci::kMsiAddressLo, 0xfee00000, 0xf);
  device_->config_write(cap + pci::msi_data_offset(true), 0x45, 0x3);
  device_->config_write(cap, uint32_t{pci::kMsiControlEnable} << 16, 0x4);
  EXPECT_EQ(interrupts_.routes[0]->message, (MsiMessage{0xfee00000, 0x45}));
  EXPECT_FALSE(interrupts_.routes[0]->masked);
  // The device's own capability never saw the guest's message.
  uint32_t raw = 0;
  ASSERT_TRUE(client_
                  ->region_read(VFIO_PCI_CONFIG_REGION_INDEX, cap + pci::kMsiAddressLo,
                                {reinterpret_cast<uint8_t*>(&raw), 4})
                  .ok());
  EXPECT_EQ(raw, 0u);

  Memfd ram = Memfd::create(1 << 20);
  ASSERT_TRUE(client_->dma_map(Iova(0), ram.range(0, 1 << 20), iommu::Perm::kReadWrite).ok());
  int fd = interrupts_.routes[0]->eventfd();
  pollfd p{fd, POLLIN, 0};
  copy(0, 0x1000);
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  EXPECT_EQ(take(fd), 1u);

  // MSI off: the device is told, and a completion signals nothing.
  device_->config_write(cap, 0, 0x4);
  copy(0, 0x1000);
  ASSERT_TRUE(run_until([&] { return bar0_read32(dma_engine::kRegCompletions) == 2; }));
  EXPECT_EQ(::poll(&p, 1, 50), 0);
}

TEST_F(VfioPciDeviceTest, IntxIsRefusedForAFunctionWithMsix) {
  start({.io = &io_});
  EXPECT_FALSE(device_->connect_intx(interrupts_, 17).ok());
  EXPECT_TRUE(interrupts_.lines.empty());
}

TEST_F(VfioPciDeviceTest, DeadDeviceReadsAllOnesAndReportsItsFailure) {
  server_.reset();
  for (int i = 0; i < 200 && !device_->failure(); ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(bar0_read32(dma_engine::kRegStatus), 0xffffffffu);
  EXPECT_EQ(device_->config_read(0), 0xffffffffu);
  ASSERT_TRUE(device_->failure().has_value());
  bar0_write(dma_engine::kRegDoorbell, 1, 4);  // dropped, no crash
}

}  // namespace
}  // namespace ioasis::devices
