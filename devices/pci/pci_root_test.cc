#include "devices/pci/pci_root.h"

#include <gtest/gtest.h>

#include <tuple>
#include <vector>

#include "devices/pci/config_access.h"
#include "devices/pci/config_space.h"

namespace ioasis::devices {
namespace {

using namespace pci;  // NOLINT

constexpr uint64_t kMmio64Start = 0x2000000000;

// An emulated function with one BAR of each kind. BAR reads return the offset's low byte so a
// test can tell the access reached the device and at which offset.
class TestFunction : public PciDevice {
 public:
  explicit TestFunction(uint16_t device_id = 0x1234)
      : config_(PciIds{.vendor_id = 0x1b36, .device_id = device_id, .class_code = 0xff0000}) {
    EXPECT_TRUE(config_.add_bar({.index = 0, .size = 0x1000}).ok());
    EXPECT_TRUE(
        config_
            .add_bar(
                {.index = 2, .size = 0x4000, .kind = PciBarKind::kMemory64, .prefetchable = true})
            .ok());
    EXPECT_TRUE(config_.add_bar({.index = 4, .size = 0x20, .kind = PciBarKind::kIo}).ok());
  }
  uint32_t config_read(uint16_t offset) override { return config_.read(offset); }
  void config_write(uint16_t offset, uint32_t value, uint8_t byte_enables) override {
    config_.write(offset, value, byte_enables);
  }
  std::vector<PciBar> bars() const override { return config_.bars(); }
  void bar_read(uint8_t index, uint64_t offset, std::span<uint8_t> data) override {
    reads.emplace_back(index, offset);
    for (auto& b : data) b = static_cast<uint8_t>(offset);
  }
  void bar_write(uint8_t index, uint64_t offset, std::span<const uint8_t>) override {
    writes.emplace_back(index, offset);
  }
  void bar_moved(uint8_t index, uint64_t old_address, uint64_t new_address) override {
    moves.emplace_back(index, old_address, new_address);
  }
  void reset() override { config_.reset(); }

  PciConfigSpace config_;
  std::vector<std::pair<uint8_t, uint64_t>> reads, writes;
  std::vector<std::tuple<uint8_t, uint64_t, uint64_t>> moves;
};

class PciRootTest : public ::testing::Test {
 protected:
  PciRootTest() {
    PciWindows windows;
    windows.mmio64_start = kMmio64Start;
    windows.mmio64_size = 0x100000000;
    root = std::make_shared<PciRoot>(mmio, pio, windows);
    io = std::make_shared<PciConfigIo>(root);
    ecam = std::make_shared<PciConfigMmio>(root, 2);
    EXPECT_TRUE(pio.insert(io, layout::kPortPciConfig, PciConfigIo::kPortCount).ok());
    EXPECT_TRUE(mmio.insert(ecam, layout::kPciEcamStart, ecam->size()).ok());
  }
  ~PciRootTest() override {
    (void)pio.remove(layout::kPortPciConfig);
    (void)mmio.remove(layout::kPciEcamStart);
  }

  static uint32_t address(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t reg) {
    return 0x80000000u | bus << 16 | dev << 11 | fn << 8 | (reg & 0xfc);
  }
  uint32_t port_read(uint32_t addr, uint64_t data_offset, size_t size) {
    pio.write(0xcf8, std::span(reinterpret_cast<const uint8_t*>(&addr), 4));
    uint32_t v = 0;
    pio.read(0xcfc + data_offset, std::span(reinterpret_cast<uint8_t*>(&v), size));
    return v;
  }
  void port_write(uint32_t addr, uint64_t data_offset, uint32_t v, size_t size) {
    pio.write(0xcf8, std::span(reinterpret_cast<const uint8_t*>(&addr), 4));
    pio.write(0xcfc + data_offset, std::span(reinterpret_cast<const uint8_t*>(&v), size));
  }
  uint32_t cf8(uint8_t dev, uint8_t fn, uint16_t reg) {
    return port_read(address(0, dev, fn, reg), 0, 4);
  }
  void cf8_write(uint8_t dev, uint8_t fn, uint16_t reg, uint32_t v) {
    port_write(address(0, dev, fn, reg), 0, v, 4);
  }
  uint64_t ecam_addr(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t reg) {
    return layout::kPciEcamStart + (uint64_t{bus} << 20 | dev << 15 | fn << 12 | reg);
  }
  uint32_t ecam_read(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t reg, size_t size = 4) {
    uint32_t v = 0;
    mmio.read(ecam_addr(bus, dev, fn, reg), std::span(reinterpret_cast<uint8_t*>(&v), size));
    return v;
  }
  void ecam_write(uint8_t dev, uint8_t fn, uint16_t reg, uint32_t v, size_t size = 4) {
    mmio.write(ecam_addr(0, dev, fn, reg), std::span(reinterpret_cast<const uint8_t*>(&v), size));
  }
  // Which device byte a bus read at `addr` returns; nullopt when nothing decodes it.
  std::optional<uint8_t> probe(Bus& bus, uint64_t addr) {
    uint8_t b = 0;
    if (!bus.read(addr, std::span(&b, 1))) return std::nullopt;
    return b;
  }

  Bus mmio{"mmio"};
  Bus pio{"pio"};
  std::shared_ptr<PciRoot> root;
  std::shared_ptr<PciConfigIo> io;
  std::shared_ptr<PciConfigMmio> ecam;
};

TEST_F(PciRootTest, HostBridgeSitsAt00_0) {
  EXPECT_EQ(cf8(0, 0, kVendorId), 0x0d578086u);
  EXPECT_EQ(cf8(0, 0, kRevisionId) >> 8, 0x060000u);
}

TEST_F(PciRootTest, AbsentFunctionsBusesAndDisabledAccessesReadAllOnes) {
  EXPECT_EQ(cf8(3, 0, kVendorId), 0xffffffffu);
  EXPECT_EQ(cf8(0, 1, kVendorId), 0xffffffffu);
  EXPECT_EQ(ecam_read(0, 3, 0, kVendorId), 0xffffffffu);
  EXPECT_EQ(ecam_read(1, 0, 0, kVendorId), 0xffffffffu);
  EXPECT_EQ(port_read(address(1, 0, 0, 0), 0, 4), 0xffffffffu);
  EXPECT_EQ(port_read(address(0, 0, 0, 0) & 0x7fffffff, 0, 4), 0xffffffffu);
  // Beyond a conventional function's 256 bytes, as Linux checks before using extended space.
  EXPECT_EQ(ecam_read(0, 0, 0, 0x100), 0xffffffffu);
}

TEST_F(PciRootTest, AddressRegisterReadsBackWithReservedBitsClear) {
  uint32_t written = 0x80001803;
  pio.write(0xcf8, std::span(reinterpret_cast<const uint8_t*>(&written), 4));
  uint32_t v = 0;
  pio.read(0xcf8, std::span(reinterpret_cast<uint8_t*>(&v), 4));
  EXPECT_EQ(v, 0x80001800u);
}

TEST_F(PciRootTest, BothMechanismsReturnTheSameBytesAtEveryWidth) {
  ASSERT_TRUE(root->add_device(std::make_shared<TestFunction>()).ok());
  ASSERT_TRUE(root->add_function(std::make_shared<TestFunction>(0x5678), 4, 3).ok());
  for (uint8_t dev : {0, 1, 2, 4}) {
    for (uint8_t fn : {0, 3}) {
      for (uint16_t reg = 0; reg < 0x100; reg += 4) {
        uint32_t a = address(0, dev, fn, reg);
        uint32_t dword = ecam_read(0, dev, fn, reg);
        ASSERT_EQ(port_read(a, 0, 4), dword) << int(dev) << "." << int(fn) << " @" << reg;
        for (uint64_t i = 0; i < 4; ++i) {
          EXPECT_EQ(port_read(a, i, 1), (dword >> (8 * i)) & 0xff);
          EXPECT_EQ(ecam_read(0, dev, fn, static_cast<uint16_t>(reg + i), 1),
                    (dword >> (8 * i)) & 0xff);
        }
        for (uint64_t i = 0; i < 3; ++i) {
          EXPECT_EQ(port_read(a, i, 2), (dword >> (8 * i)) & 0xffff);
        }
      }
    }
  }
}

TEST_F(PciRootTest, SubDwordWritesThroughEitherMechanismHitTheRightByte) {
  auto addr = root->add_device(std::make_shared<TestFunction>());
  ASSERT_TRUE(addr.ok());
  port_write(address(0, 1, 0, kInterruptLine), 0, 0x0a, 1);
  EXPECT_EQ(ecam_read(0, 1, 0, kInterruptLine) & 0xffff, 0x000au);
  ecam_write(1, 0, kCacheLineSize, 0x10, 1);
  EXPECT_EQ(port_read(address(0, 1, 0, kCacheLineSize), 0, 1), 0x10u);
  port_write(address(0, 1, 0, kCommand), 0, 0x0007, 2);
  EXPECT_EQ(ecam_read(0, 1, 0, kCommand, 2), 0x0007u);
}

TEST_F(PciRootTest, FunctionZeroAdvertisesMultiFunctionWhenSiblingsExist) {
  ASSERT_TRUE(root->add_function(std::make_shared<TestFunction>(), 5, 0).ok());
  EXPECT_EQ(cf8(5, 0, kHeaderType & ~3) >> 16 & 0x80, 0u);
  ASSERT_TRUE(root->add_function(std::make_shared<TestFunction>(), 5, 2).ok());
  EXPECT_EQ(cf8(5, 0, kHeaderType & ~3) >> 16 & 0x80, 0x80u);
  EXPECT_EQ(cf8(5, 2, kHeaderType & ~3) >> 16 & 0x80, 0u);
  EXPECT_EQ(root->add_function(std::make_shared<TestFunction>(), 5, 2).error().code(),
            Errc::kAlreadyExists);
}

TEST_F(PciRootTest, BarsAreAssignedInTheirWindowsNaturallyAlignedAndDecoded) {
  auto dev = std::make_shared<TestFunction>();
  ASSERT_TRUE(root->add_device(dev).ok());
  uint64_t bar0 = cf8(1, 0, kBar0) & ~0xfu;
  uint64_t bar2 = (cf8(1, 0, kBar0 + 8) & ~0xfu) | uint64_t{cf8(1, 0, kBar0 + 12)} << 32;
  uint64_t bar4 = cf8(1, 0, kBar0 + 16) & ~0x3u;
  EXPECT_GE(bar0, layout::kPciMmio32Start);
  EXPECT_LT(bar0, layout::kPciMmio32Start + layout::kPciMmio32Size);
  EXPECT_EQ(bar0 % 0x1000, 0u);
  EXPECT_GE(bar2, kMmio64Start);
  EXPECT_EQ(bar2 % 0x4000, 0u);
  EXPECT_GE(bar4, 0x1000u);
  EXPECT_EQ(bar4 % 0x20, 0u);
  EXPECT_EQ(cf8(1, 0, kCommand) & 0x3, 0x3u);
  EXPECT_EQ(probe(mmio, bar0 + 0x12), 0x12);
  EXPECT_EQ(probe(mmio, bar2 + 0x3ff0), 0xf0);
  EXPECT_EQ(probe(pio, bar4 + 0x1f), 0x1f);
  ASSERT_EQ(dev->reads.size(), 3u);
  EXPECT_EQ(dev->reads[1], std::make_pair(uint8_t{2}, uint64_t{0x3ff0}));
  uint8_t v = 1;
  mmio.write(bar0 + 8, std::span<const uint8_t>(&v, 1));
  EXPECT_EQ(dev->writes.at(0), std::make_pair(uint8_t{0}, uint64_t{8}));
}

TEST_F(PciRootTest, TwoDevicesGetDisjointBars) {
  ASSERT_TRUE(root->add_device(std::make_shared<TestFunction>()).ok());
  ASSERT_TRUE(root->add_device(std::make_shared<TestFunction>()).ok());
  for (uint16_t reg : {uint16_t{kBar0}, uint16_t{kBar0 + 8}, uint16_t{kBar0 + 16}}) {
    EXPECT_NE(cf8(1, 0, reg), cf8(2, 0, reg));
  }
}

TEST_F(PciRootTest, SizingWithDecodeOnKeepsTheBarWhereItWas) {
  ASSERT_TRUE(root->add_device(std::make_shared<TestFunction>()).ok());
  uint32_t bar0 = cf8(1, 0, kBar0);
  uint32_t bar2_lo = cf8(1, 0, kBar0 + 8), bar2_hi = cf8(1, 0, kBar0 + 12);
  cf8_write(1, 0, kBar0, 0xffffffff);
  EXPECT_EQ(cf8(1, 0, kBar0), 0xfffff000u);
  EXPECT_EQ(probe(mmio, bar0), 0x00);  // still decoded at the old address
  cf8_write(1, 0, kBar0, bar0);
  cf8_write(1, 0, kBar0 + 8, 0xffffffff);
  cf8_write(1, 0, kBar0 + 12, 0xffffffff);
  EXPECT_EQ(cf8(1, 0, kBar0 + 8), 0xffffc00cu);
  EXPECT_EQ(cf8(1, 0, kBar0 + 12), 0xffffffffu);
  cf8_write(1, 0, kBar0 + 8, bar2_lo);
  cf8_write(1, 0, kBar0 + 12, bar2_hi);
  EXPECT_EQ(probe(mmio, (bar2_lo & ~0xfu) | uint64_t{bar2_hi} << 32), 0x00);
  EXPECT_EQ(probe(mmio, bar0 + 4), 0x04);
}

TEST_F(PciRootTest, SizingTheIoBarThroughEcam) {
  ASSERT_TRUE(root->add_device(std::make_shared<TestFunction>()).ok());
  uint32_t bar4 = ecam_read(0, 1, 0, kBar0 + 16);
  ecam_write(1, 0, kBar0 + 16, 0xffffffff);
  EXPECT_EQ(ecam_read(0, 1, 0, kBar0 + 16), 0xffffffe1u);
  ecam_write(1, 0, kBar0 + 16, bar4);
  EXPECT_EQ(probe(pio, bar4 & ~3u), 0x00);
}

TEST_F(PciRootTest, RelocatedBarMovesOnTheBus) {
  auto dev = std::make_shared<TestFunction>();
  ASSERT_TRUE(root->add_device(dev).ok());
  uint64_t old_bar0 = cf8(1, 0, kBar0);
  dev->moves.clear();
  uint64_t new_bar0 = layout::kPciMmio32Start + 0x1000000;
  cf8_write(1, 0, kBar0, static_cast<uint32_t>(new_bar0));
  EXPECT_FALSE(probe(mmio, old_bar0).has_value());
  EXPECT_EQ(probe(mmio, new_bar0 + 0x20), 0x20);
  ASSERT_EQ(dev->moves.size(), 1u);
  EXPECT_EQ(dev->moves[0], std::make_tuple(uint8_t{0}, old_bar0, new_bar0));
}

TEST_F(PciRootTest, SixtyFourBitBarMovesWhenBothHalvesAreWritten) {
  ASSERT_TRUE(root->add_device(std::make_shared<TestFunction>()).ok());
  uint64_t target = 0x3000000000;
  ecam_write(1, 0, kBar0 + 8, static_cast<uint32_t>(target));
  ecam_write(1, 0, kBar0 + 12, static_cast<uint32_t>(target >> 32));
  EXPECT_EQ(probe(mmio, target + 0x10), 0x10);
}

TEST_F(PciRootTest, CommandRegisterGatesDecoding) {
  auto dev = std::make_shared<TestFunction>();
  ASSERT_TRUE(root->add_device(dev).ok());
  uint64_t bar0 = cf8(1, 0, kBar0);
  uint64_t bar4 = cf8(1, 0, kBar0 + 16) & ~3u;
  dev->moves.clear();
  port_write(address(0, 1, 0, kCommand), 0, kCommandIo, 2);  // memory off, I/O on
  EXPECT_FALSE(probe(mmio, bar0).has_value());
  EXPECT_TRUE(probe(pio, bar4).has_value());
  EXPECT_EQ(dev->moves.size(), 2u);  // BAR 0 and BAR 2 left the bus
  // Moving a BAR while memory decode is off changes nothing on the bus...
  uint64_t new_bar0 = layout::kPciMmio32Start + 0x2000000;
  cf8_write(1, 0, kBar0, static_cast<uint32_t>(new_bar0));
  EXPECT_FALSE(probe(mmio, new_bar0).has_value());
  // ...until decode comes back on, at the new address.
  port_write(address(0, 1, 0, kCommand), 0, kCommandIo | kCommandMemory, 2);
  EXPECT_EQ(probe(mmio, new_bar0 + 1), 0x01);
  EXPECT_FALSE(probe(mmio, bar0).has_value());
  port_write(address(0, 1, 0, kCommand), 0, kCommandMemory, 2);
  EXPECT_FALSE(probe(pio, bar4).has_value());
}

TEST_F(PciRootTest, OverlappingBarStaysOffTheBusUntilMoved) {
  ASSERT_TRUE(root->add_device(std::make_shared<TestFunction>()).ok());
  ASSERT_TRUE(root->add_device(std::make_shared<TestFunction>()).ok());
  uint32_t first = cf8(1, 0, kBar0), second = cf8(2, 0, kBar0);
  cf8_write(2, 0, kBar0, first);
  EXPECT_FALSE(probe(mmio, second).has_value());
  cf8_write(2, 0, kBar0, second);
  EXPECT_TRUE(probe(mmio, second).has_value());
}

TEST_F(PciRootTest, ResetPutsBarsBackAtTheirAssignedAddresses) {
  ASSERT_TRUE(root->add_device(std::make_shared<TestFunction>()).ok());
  uint32_t bar0 = cf8(1, 0, kBar0);
  cf8_write(1, 0, kBar0, bar0 + 0x100000);
  root->reset();
  EXPECT_EQ(cf8(1, 0, kBar0), bar0);
  EXPECT_TRUE(probe(mmio, bar0).has_value());
  EXPECT_FALSE(probe(mmio, bar0 + 0x100000).has_value());
}

TEST_F(PciRootTest, DestroyingTheRootTakesBarsOffTheBus) {
  ASSERT_TRUE(root->add_device(std::make_shared<TestFunction>()).ok());
  uint32_t bar0 = cf8(1, 0, kBar0);
  (void)pio.remove(layout::kPortPciConfig);
  (void)mmio.remove(layout::kPciEcamStart);
  io.reset();
  ecam.reset();
  root.reset();
  EXPECT_FALSE(probe(mmio, bar0).has_value());
}

TEST_F(PciRootTest, SlotsRunOut) {
  for (int i = 1; i < PciRoot::kSlots; ++i) {
    auto small = std::make_shared<TestFunction>();
    ASSERT_TRUE(root->add_device(small).ok()) << i;
  }
  EXPECT_EQ(root->add_device(std::make_shared<TestFunction>()).error().code(),
            Errc::kResourceExhausted);
}

class ByteRecorder : public BusDevice {
 public:
  void read(uint64_t, std::span<uint8_t> data) override { data[0] = value; }
  void write(uint64_t offset, std::span<const uint8_t> data) override {
    offsets.push_back(offset);
    value = data[0];
  }
  uint8_t value = 0;
  std::vector<uint64_t> offsets;
};

TEST(PciConfigIo, ByteAccessAt0xcf9GoesToTheResetControl) {
  Bus mmio("mmio"), pio("pio");
  auto root = std::make_shared<PciRoot>(mmio, pio, PciWindows{});
  auto reset = std::make_shared<ByteRecorder>();
  PciConfigIo io(root, reset);
  uint8_t v = 0x06;
  io.write(1, std::span<const uint8_t>(&v, 1));
  EXPECT_EQ(reset->offsets, std::vector<uint64_t>{0});
  uint8_t back = 0;
  io.read(1, std::span(&back, 1));
  EXPECT_EQ(back, 0x06);
  uint32_t addr = 0x80000000;
  io.write(0, std::span(reinterpret_cast<const uint8_t*>(&addr), 4));
  EXPECT_EQ(reset->offsets.size(), 1u);  // dword writes are the address register
}

}  // namespace
}  // namespace ioasis::devices
