// Kernel VFIO passthrough against the FAKE kernel: KernelVfio opens the device through a cdev
// bound to iommufd or through its group in a type1 container, and VfioPciDevice drives the DMA
// engine behind it, whose DMA goes through the fake IOMMU.
#include "devices/vfio/kernel_vfio_device.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/eventfd.h>

#include <chrono>
#include <thread>

#include "devices/eventfd_interrupts_test_util.h"
#include "devices/pci/pci_regs.h"
#include "devices/vfio/kernel_vfio_test_util.h"
#include "devices/vfio/vfio_pci_device.h"
#include "devices/vfio/vfio_user_test_util.h"

namespace ioasis::devices {
namespace {

using iommu::testing::FakeKernel;
using testing::EngineModel;
using testing::FakeSysfs;
using testing::Interrupts;
using vfio_user::DmaError;
using vfio_user::DmaState;
using vfio_user::testing::Memfd;
using vfio_user::testing::status_of;
namespace regs = vfio_user::dma_engine;

std::string cdev(int n) { return "/dev/vfio/devices/vfio" + std::to_string(n); }

// Parameter: true opens through the cdev (iommufd), false through the group (type1).
class KernelVfioTest : public ::testing::TestWithParam<bool> {
 protected:
  std::shared_ptr<EngineModel> add(int n, const std::string& pci, int group,
                                   bool with_reset = true) {
    auto model = std::make_shared<EngineModel>(fake_, cdev(n), with_reset);
    fake_.add_vfio_device(cdev(n), group, pci, model);
    sysfs_.add(n, pci, group);
    return model;
  }
  std::string path(int n, const std::string& pci) const {
    return GetParam() ? cdev(n) : sysfs_.pci_path(pci);
  }
  KernelVfio::Opened open(int n, const std::string& pci) {
    auto r = vfio_.open(path(n, pci), pci);
    EXPECT_TRUE(r.ok()) << r.error().message();
    return r.ok() ? std::move(*r) : KernelVfio::Opened{};
  }
  iommu::IoasId ioas_with_ram(uint64_t iova, uint64_t ram_offset, uint64_t length) {
    iommu::IoasId x = *ctx_.create_ioas(iommu::IoasKind::kHostManaged);
    EXPECT_TRUE(ctx_.map(x, Iova(iova), ram_.range(ram_offset, length), iommu::Perm::kReadWrite));
    return x;
  }
  static void write64(VfioDeviceTransport& d, uint64_t reg, uint64_t v) {
    ASSERT_TRUE(
        d.region_write(VFIO_PCI_BAR0_REGION_INDEX, reg, {reinterpret_cast<const uint8_t*>(&v), 8}));
  }
  static uint32_t status(VfioDeviceTransport& d) {
    uint32_t v = 0;
    EXPECT_TRUE(d.region_read(VFIO_PCI_BAR0_REGION_INDEX, regs::kRegStatus,
                              {reinterpret_cast<uint8_t*>(&v), 4}));
    return v;
  }
  // Runs one copy through the device's BAR0 and returns STATUS once it is no longer busy.
  static uint32_t copy(VfioDeviceTransport& d, uint64_t src, uint64_t dst, uint32_t length) {
    write64(d, regs::kRegSrc, src);
    write64(d, regs::kRegDst, dst);
    uint32_t go[2] = {length, 1};  // LENGTH then DOORBELL
    EXPECT_TRUE(d.region_write(VFIO_PCI_BAR0_REGION_INDEX, regs::kRegLength,
                               {reinterpret_cast<const uint8_t*>(&length), 4}));
    EXPECT_TRUE(d.region_write(VFIO_PCI_BAR0_REGION_INDEX, regs::kRegDoorbell,
                               {reinterpret_cast<const uint8_t*>(&go[1]), 4}));
    uint32_t s = status(d);
    for (int i = 0; i < 1000 && (s & 0xff) == uint32_t(DmaState::kBusy); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      s = status(d);
    }
    return s;
  }

  FakeKernel fake_;
  FakeSysfs sysfs_;
  iommu::IoasidContext ctx_;
  KernelVfio vfio_{fake_, ctx_, {sysfs_.root(), "/dev/iommu"}};
  Memfd ram_ = Memfd::create(1 << 20);
};

TEST_P(KernelVfioTest, OpensAPciDeviceJoinedWithItsIommuGroupTaggedAsKernel) {
  add(0, "0000:00:04.0", 7);
  KernelVfio::Opened d = open(0, "0000:00:04.0");
  ASSERT_TRUE(d.device);
  EXPECT_EQ(d.kernel_group, "7");
  EXPECT_EQ(d.group.value, kKernelGroupTag | 7);
  auto bar2 = d.device->region_info(VFIO_PCI_BAR2_REGION_INDEX);
  ASSERT_TRUE(bar2.ok()) << bar2.error().message();
  EXPECT_TRUE(bar2->mmappable());
  ASSERT_EQ(bar2->mmap_areas.size(), 1u);  // from the sparse-mmap capability
  EXPECT_EQ(bar2->mmap_areas[0].size, regs::kBar2Size);
  EXPECT_EQ(bar2->mmap_offset, uint64_t{VFIO_PCI_BAR2_REGION_INDEX} << FakeKernel::kRegionShift);
  if (GetParam()) {
    EXPECT_TRUE(vfio_.iommufd());
  } else {
    EXPECT_TRUE(vfio_.type1());
  }
}

TEST_P(KernelVfioTest, PciFunctionOverTheKernelTransportCopiesAndFiresMsix) {
  add(0, "0000:00:04.0", 7);
  KernelVfio::Opened d = open(0, "0000:00:04.0");
  Interrupts interrupts;
  auto fn = VfioPciDevice::create("vfio:test", d.device, interrupts);
  ASSERT_TRUE(fn.ok()) << fn.error().message();
  auto& dev = **fn;
  EXPECT_EQ(dev.config_read(0), regs::kVendorId | regs::kDeviceId << 16);
  uint64_t src = 0x1234;
  dev.bar_write(0, regs::kRegSrc, {reinterpret_cast<const uint8_t*>(&src), 8});
  uint64_t back = 0;
  dev.bar_read(0, regs::kRegSrc, {reinterpret_cast<uint8_t*>(&back), 8});
  EXPECT_EQ(back, src);

  uint16_t cap = dev.config_read(pci::kCapabilitiesPointer) & 0xfc;
  while (cap && (dev.config_read(cap) & 0xff) != pci::kCapIdMsix) cap = dev.config_read(cap) >> 8;
  ASSERT_NE(cap, 0);
  uint32_t unmask = 0;
  dev.bar_write(0, regs::kMsixTable + 12, {reinterpret_cast<const uint8_t*>(&unmask), 4});
  dev.config_write(cap, uint32_t{Msix::kControlEnable} << 16, 0xc);
  ASSERT_EQ(interrupts.routes.size(), 1u);

  iommu::IoasId x = ioas_with_ram(0x100000, 0, 0x10000);
  ASSERT_TRUE(ctx_.attach(d.dma, x).ok());
  std::memcpy(ram_.at(0), "through the iommu", 18);
  EXPECT_EQ(copy(*d.device, 0x100000, 0x108000, 18), status_of(DmaState::kDone));
  EXPECT_STREQ(reinterpret_cast<char*>(ram_.at(0x8000)), "through the iommu");
  pollfd p{interrupts.routes[0]->eventfd(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 5000), 1);
  // Outside the mapping the fake IOMMU refuses the DMA.
  EXPECT_EQ(copy(*d.device, 0x200000, 0x108000, 8),
            status_of(DmaState::kError, DmaError::kSrcUnmapped));
}

TEST_P(KernelVfioTest, MappedBar2SharesMemoryWithTheDevice) {
  add(0, "0000:00:04.0", 7);
  KernelVfio::Opened d = open(0, "0000:00:04.0");
  auto mapped = d.device->map_region(VFIO_PCI_BAR2_REGION_INDEX, 0, regs::kBar2Size);
  ASSERT_TRUE(mapped.ok()) << mapped.error().message();
  std::memcpy(mapped->data() + 0x10, "shared", 7);
  char seen[7] = {};
  ASSERT_TRUE(d.device->region_read(VFIO_PCI_BAR2_REGION_INDEX, 0x10,
                                    {reinterpret_cast<uint8_t*>(seen), 7}));
  EXPECT_STREQ(seen, "shared");
  EXPECT_FALSE(d.device->map_region(VFIO_PCI_BAR0_REGION_INDEX, 0, 0x1000).ok());
  EXPECT_FALSE(d.device->map_region(VFIO_PCI_BAR2_REGION_INDEX, 0, 0x2000).ok());
}

TEST_P(KernelVfioTest, ResetReachesTheDeviceOnlyWhenItOffersOne) {
  auto with = add(0, "0000:00:04.0", 7);
  auto without = add(1, "0000:00:05.0", 8, /*with_reset=*/false);
  KernelVfio::Opened a = open(0, "0000:00:04.0");
  KernelVfio::Opened b = open(1, "0000:00:05.0");
  EXPECT_TRUE(a.device->reset().ok());
  EXPECT_EQ(with->resets, 1);
  EXPECT_TRUE(b.device->reset().ok());  // the fake answers EINVAL were the ioctl sent
  EXPECT_EQ(without->resets, 0);
}

TEST_P(KernelVfioTest, DevicesSharingAnAddressSpaceCopyThroughOneMapping) {
  add(0, "0000:00:04.0", 7);
  add(1, "0000:00:05.0", 8);
  KernelVfio::Opened a = open(0, "0000:00:04.0");
  KernelVfio::Opened b = open(1, "0000:00:05.0");
  iommu::IoasId x = ioas_with_ram(0x100000, 0, 0x10000);
  ASSERT_TRUE(ctx_.attach(a.dma, x).ok());
  ASSERT_TRUE(ctx_.attach(b.dma, x).ok());
  std::memcpy(ram_.at(0), "shared", 7);
  EXPECT_EQ(copy(*a.device, 0x100000, 0x101000, 7), status_of(DmaState::kDone));
  EXPECT_EQ(copy(*b.device, 0x101000, 0x102000, 7), status_of(DmaState::kDone));
  EXPECT_STREQ(reinterpret_cast<char*>(ram_.at(0x2000)), "shared");
  EXPECT_EQ(ctx_.stats().pinned_bytes, 0x10000u);
  if (GetParam()) {
    EXPECT_EQ(fake_.ioas_count(), 1u);  // one kernel IOAS, one set of pins
  }
}

TEST_P(KernelVfioTest, DevicesInSeparateAddressSpacesCannotReachEachOthersIovas) {
  add(0, "0000:00:04.0", 7);
  add(1, "0000:00:05.0", 8);
  KernelVfio::Opened a = open(0, "0000:00:04.0");
  KernelVfio::Opened b = open(1, "0000:00:05.0");
  ASSERT_TRUE(ctx_.attach(a.dma, ioas_with_ram(0x100000, 0, 0x8000)).ok());
  ASSERT_TRUE(ctx_.attach(b.dma, ioas_with_ram(0x200000, 0x8000, 0x8000)).ok());
  EXPECT_EQ(copy(*a.device, 0x100000, 0x101000, 8), status_of(DmaState::kDone));
  EXPECT_EQ(copy(*b.device, 0x100000, 0x201000, 8),
            status_of(DmaState::kError, DmaError::kSrcUnmapped));
  EXPECT_EQ(copy(*b.device, 0x200000, 0x201000, 8), status_of(DmaState::kDone));
}

TEST_P(KernelVfioTest, SecondFunctionOfAGroupCannotUseAnotherAddressSpace) {
  add(0, "0000:00:04.0", 9);
  add(1, "0000:00:04.1", 9);
  KernelVfio::Opened a = open(0, "0000:00:04.0");
  KernelVfio::Opened b = open(1, "0000:00:04.1");
  EXPECT_EQ(a.group, b.group);
  iommu::IoasId x = ioas_with_ram(0x100000, 0, 0x1000);
  iommu::IoasId y = ioas_with_ram(0x100000, 0x1000, 0x1000);
  ASSERT_TRUE(ctx_.attach(a.dma, x).ok());
  auto r = ctx_.attach(b.dma, y);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::kPermissionDenied);
  EXPECT_TRUE(ctx_.attach(b.dma, x).ok());
}

TEST_P(KernelVfioTest, IntxIsUnmaskedByTheKernelOnTheResampleEventfdWithoutUs) {
  auto model = std::make_shared<EngineModel>(fake_, cdev(0), true, /*intx=*/true);
  fake_.add_vfio_device(cdev(0), 7, "0000:00:04.0", model);
  sysfs_.add(0, "0000:00:04.0", 7);
  KernelVfio::Opened d = open(0, "0000:00:04.0");
  Interrupts interrupts;
  // No control loop: nothing of ours could unmask INTx, only the device itself.
  auto fn = VfioPciDevice::create("vfio:intx", d.device, interrupts);
  ASSERT_TRUE(fn.ok()) << fn.error().message();
  auto& dev = **fn;
  EXPECT_EQ(dev.msix(), nullptr);
  EXPECT_EQ(dev.intx_pin(), 1);
  auto connected = dev.connect_intx(interrupts, 17);
  ASSERT_TRUE(connected.ok()) << connected.error().message();
  ASSERT_EQ(interrupts.lines.size(), 1u);
  testing::EventFdLine& line = *interrupts.lines[0];
  EXPECT_EQ(dev.config_read(pci::kInterruptLine) & 0xffff, 1u << 8 | 17);  // pin INTA, line 17

  ASSERT_TRUE(ctx_.attach(d.dma, ioas_with_ram(0x100000, 0, 0x10000)).ok());
  pollfd p{line.trigger.fd(), POLLIN, 0};
  EXPECT_EQ(copy(*d.device, 0x100000, 0x108000, 8), status_of(DmaState::kDone));
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  EXPECT_EQ(*line.trigger.consume(), 1u);
  uint32_t ack = 1;  // the guest's handler acknowledges at the device
  ASSERT_TRUE(d.device->region_write(VFIO_PCI_BAR0_REGION_INDEX, regs::kRegIntStatus,
                                     {reinterpret_cast<const uint8_t*>(&ack), 4}));
  // VFIO masked INTx when it fired: the next completion waits for the guest's EOI.
  EXPECT_EQ(copy(*d.device, 0x100000, 0x108000, 8), status_of(DmaState::kDone));
  EXPECT_EQ(::poll(&p, 1, 100), 0);
  ASSERT_TRUE(line.resample.signal().ok());  // the EOI, as KVM signals it
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  EXPECT_EQ(*line.trigger.consume(), 1u);
}

TEST_P(KernelVfioTest, ANonPciDeviceIsRefusedAndLeavesTheContext) {
  struct Platform : EngineModel {
    using EngineModel::EngineModel;
    uint32_t device_flags() const override { return VFIO_DEVICE_FLAGS_PLATFORM; }
  };
  auto model = std::make_shared<Platform>(fake_, cdev(0));
  fake_.add_vfio_device(cdev(0), 7, "0000:00:04.0", model);
  sysfs_.add(0, "0000:00:04.0", 7);
  auto r = vfio_.open(path(0, "0000:00:04.0"), "plat");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("not a PCI device"), std::string::npos);
  EXPECT_EQ(ctx_.stats().devices, 0u);
  // Nothing of the device stays open: its cdev or its group (and the group's container) are
  // closed; only the iommufd itself stays for the next device.
  EXPECT_EQ(fake_.open_fds(), GetParam() ? 1u : 0u);
}

TEST_P(KernelVfioTest, AMissingDeviceNamesThePathAndTheReason) {
  auto r = vfio_.open(path(3, "0000:00:09.0"), "gone");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find(path(3, "0000:00:09.0")), std::string::npos)
      << r.error().message();
  EXPECT_NE(r.error().message().find("No such file or directory"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(CdevAndGroup, KernelVfioTest, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "Iommufd" : "Type1"; });

}  // namespace
}  // namespace ioasis::devices
