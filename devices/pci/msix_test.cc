#include "devices/pci/msix.h"

#include <gtest/gtest.h>

#include <vector>

namespace ioasis::devices {
namespace {

struct RouteLog {
  std::vector<std::pair<MsiMessage, bool>> updates;
  int triggers = 0;
};

class FakeRoute : public MsiRoute {
 public:
  explicit FakeRoute(RouteLog* log) : log_(log) {}
  Result<void> update(const MsiMessage& msg, bool masked) override {
    log_->updates.emplace_back(msg, masked);
    return {};
  }
  void trigger() override { ++log_->triggers; }
  int eventfd() const override { return -1; }

 private:
  RouteLog* log_;
};

class FakeInterrupts : public InterruptManager {
 public:
  std::shared_ptr<IrqLine> legacy_line(uint32_t) override { return nullptr; }
  Result<std::unique_ptr<MsiRoute>> create_msi_route() override {
    logs.push_back(std::make_unique<RouteLog>());
    return std::unique_ptr<MsiRoute>(std::make_unique<FakeRoute>(logs.back().get()));
  }
  std::vector<std::unique_ptr<RouteLog>> logs;
};

constexpr MsixLayout kLayout{
    .table_bar = 1, .table_offset = 0x0, .pba_bar = 1, .pba_offset = 0x800};

class MsixTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = Msix::create(irqs, 4, kLayout);
    ASSERT_TRUE(m.ok()) << m.error().message();
    msix = std::move(m).value();
    for (auto& log : irqs.logs) log->updates.clear();
  }
  void table_write32(uint16_t vector, uint64_t field, uint32_t value) {
    ASSERT_TRUE(msix->bar_write(kLayout.table_bar, kLayout.table_offset + vector * 16u + field,
                                std::span(reinterpret_cast<const uint8_t*>(&value), 4)));
  }
  uint32_t table_read32(uint16_t vector, uint64_t field) {
    uint32_t v = 0;
    EXPECT_TRUE(msix->bar_read(kLayout.table_bar, kLayout.table_offset + vector * 16u + field,
                               std::span(reinterpret_cast<uint8_t*>(&v), 4)));
    return v;
  }
  uint64_t pba() {
    uint64_t v = 0;
    EXPECT_TRUE(msix->bar_read(kLayout.pba_bar, kLayout.pba_offset,
                               std::span(reinterpret_cast<uint8_t*>(&v), 8)));
    return v;
  }
  void program(uint16_t vector, uint64_t address, uint32_t data) {
    table_write32(vector, 0, static_cast<uint32_t>(address));
    table_write32(vector, 4, static_cast<uint32_t>(address >> 32));
    table_write32(vector, 8, data);
  }
  RouteLog& log(uint16_t vector) { return *irqs.logs[vector]; }

  FakeInterrupts irqs;
  std::unique_ptr<Msix> msix;
};

TEST_F(MsixTest, CreatesOneMaskedRoutePerVector) {
  FakeInterrupts fresh;
  auto m = Msix::create(fresh, 3, kLayout);
  ASSERT_TRUE(m.ok());
  ASSERT_EQ(fresh.logs.size(), 3u);
  ASSERT_EQ(fresh.logs[2]->updates.size(), 1u);
  EXPECT_TRUE(fresh.logs[2]->updates[0].second);
}

TEST_F(MsixTest, CapabilityDescribesTableAndPba) {
  FakeInterrupts fresh;
  auto m = Msix::create(fresh, 17,
                        {.table_bar = 2, .table_offset = 0x2000, .pba_bar = 4, .pba_offset = 0x18});
  ASSERT_TRUE(m.ok());
  std::vector<uint8_t> cap = (*m)->capability();
  ASSERT_EQ(cap.size(), sizeof(MsixCapability));
  EXPECT_EQ(cap[0], 0x11);
  EXPECT_EQ(cap[2] | cap[3] << 8, 16);  // table size is N-1
  EXPECT_EQ(cap[4] | cap[5] << 8 | cap[6] << 16 | cap[7] << 24, 0x2002);
  EXPECT_EQ(cap[8] | cap[9] << 8 | cap[10] << 16 | cap[11] << 24, 0x1c);
  EXPECT_EQ((*m)->pba_size(), 8u);
}

TEST_F(MsixTest, RejectsBadLayouts) {
  FakeInterrupts fresh;
  EXPECT_FALSE(Msix::create(fresh, 0, kLayout).ok());
  EXPECT_FALSE(Msix::create(fresh, 2049, kLayout).ok());
  EXPECT_FALSE(Msix::create(fresh, 4, {.table_bar = 0, .table_offset = 4}).ok());
  EXPECT_FALSE(
      Msix::create(fresh, 4, {.table_bar = 0, .table_offset = 0, .pba_bar = 0, .pba_offset = 0x20})
          .ok());
}

TEST_F(MsixTest, EntriesStartMaskedAndReadBack) {
  EXPECT_EQ(table_read32(2, 12), 1u);
  program(2, 0xfee01000, 0x4041);
  EXPECT_EQ(table_read32(2, 0), 0xfee01000u);
  EXPECT_EQ(table_read32(2, 8), 0x4041u);
}

TEST_F(MsixTest, TableWritesUpdateTheRoute) {
  msix->set_message_control(Msix::kControlEnable);
  program(1, 0xfee00000, 0x31);
  table_write32(1, 12, 0);  // unmask
  ASSERT_FALSE(log(1).updates.empty());
  auto [msg, masked] = log(1).updates.back();
  EXPECT_EQ(msg, (MsiMessage{0xfee00000, 0x31}));
  EXPECT_FALSE(masked);
  EXPECT_TRUE(log(0).updates.empty());  // other vectors untouched
  size_t before = log(1).updates.size();
  table_write32(1, 8, 0x31);  // same value: no new route update
  EXPECT_EQ(log(1).updates.size(), before);
  table_write32(1, 8, 0x32);
  EXPECT_EQ(log(1).updates.back().first.data, 0x32u);
}

TEST_F(MsixTest, QwordTableWriteUpdatesTheRoute) {
  msix->set_message_control(Msix::kControlEnable);
  uint64_t addr = 0x00000000fee02000;
  ASSERT_TRUE(msix->bar_write(1, 0x30, std::span(reinterpret_cast<const uint8_t*>(&addr), 8)));
  EXPECT_EQ(log(3).updates.back().first.address, 0xfee02000u);
}

TEST_F(MsixTest, MisalignedTableAccessIsDropped) {
  uint16_t v = 0xffff;
  EXPECT_TRUE(msix->bar_write(1, 0x2, std::span(reinterpret_cast<const uint8_t*>(&v), 2)));
  EXPECT_EQ(table_read32(0, 0), 0u);
}

TEST_F(MsixTest, MaskedVectorSetsPendingAndDeliversOnUnmask) {
  msix->set_message_control(Msix::kControlEnable);
  program(2, 0xfee00000, 0x22);
  msix->trigger(2);
  EXPECT_EQ(log(2).triggers, 0);
  EXPECT_TRUE(msix->pending(2));
  EXPECT_EQ(pba(), 0x4u);
  table_write32(2, 12, 0);
  EXPECT_EQ(log(2).triggers, 1);
  EXPECT_FALSE(msix->pending(2));
  EXPECT_EQ(pba(), 0u);
  msix->trigger(2);
  EXPECT_EQ(log(2).triggers, 2);
}

TEST_F(MsixTest, FunctionMaskHoldsEveryVector) {
  msix->set_message_control(Msix::kControlEnable | Msix::kControlFunctionMask);
  program(0, 0xfee00000, 0x30);
  table_write32(0, 12, 0);
  EXPECT_TRUE(log(0).updates.back().second);  // still masked by the function mask
  msix->trigger(0);
  EXPECT_EQ(log(0).triggers, 0);
  EXPECT_EQ(pba(), 0x1u);
  msix->set_message_control(Msix::kControlEnable);
  EXPECT_FALSE(log(0).updates.back().second);
  EXPECT_EQ(log(0).triggers, 1);
  EXPECT_EQ(pba(), 0u);
}

TEST_F(MsixTest, DisabledMsixDropsTriggers) {
  program(0, 0xfee00000, 0x30);
  table_write32(0, 12, 0);
  msix->trigger(0);
  EXPECT_EQ(log(0).triggers, 0);
  EXPECT_EQ(pba(), 0u);
  EXPECT_TRUE(log(0).updates.back().second);  // a disabled function's vectors are masked
}

TEST_F(MsixTest, PbaIsReadOnly) {
  msix->set_message_control(Msix::kControlEnable);
  msix->trigger(1);
  uint64_t zero = 0;
  EXPECT_TRUE(msix->bar_write(1, kLayout.pba_offset,
                              std::span(reinterpret_cast<const uint8_t*>(&zero), 8)));
  EXPECT_EQ(pba(), 0x2u);
}

TEST_F(MsixTest, AccessesOutsideTableAndPbaAreLeftToTheDevice) {
  uint32_t v = 0;
  EXPECT_FALSE(msix->bar_read(1, 0x400, std::span(reinterpret_cast<uint8_t*>(&v), 4)));
  EXPECT_FALSE(msix->bar_read(0, 0x0, std::span(reinterpret_cast<uint8_t*>(&v), 4)));
  EXPECT_FALSE(msix->bar_read(1, 0x3c, std::span(reinterpret_cast<uint8_t*>(&v), 8)));
}

TEST_F(MsixTest, GuestConfigWritesReachMessageControl) {
  PciConfigSpace cs(PciIds{.vendor_id = 0x1af4, .device_id = 0x1041});
  auto offset = msix->add_to(cs);
  ASSERT_TRUE(offset.ok());
  // Table size is read-only; only enable and function mask stick.
  cs.write(*offset, 0xffff0000u | cs.read(*offset), 0xc);
  EXPECT_EQ(cs.get16(*offset + 2), 0xc003);
  msix->config_written(cs, *offset);
  EXPECT_TRUE(msix->enabled());
  cs.write(*offset, 0x8000u << 16, 0xc);
  msix->config_written(cs, *offset);
  program(3, 0xfee00000, 0x55);
  table_write32(3, 12, 0);
  msix->trigger(3);
  EXPECT_EQ(log(3).triggers, 1);
  msix->config_written(cs, static_cast<uint16_t>(*offset + 4));  // not message control
  EXPECT_TRUE(msix->enabled());
}

TEST_F(MsixTest, ResetMasksAndClearsEverything) {
  msix->set_message_control(Msix::kControlEnable | Msix::kControlFunctionMask);
  msix->trigger(1);
  program(1, 0xfee00000, 1);
  msix->reset();
  EXPECT_FALSE(msix->enabled());
  EXPECT_EQ(pba(), 0u);
  EXPECT_EQ(table_read32(1, 0), 0u);
  EXPECT_EQ(table_read32(1, 12), 1u);
  EXPECT_TRUE(log(1).updates.back().second);
}

TEST_F(MsixTest, MaskObserverHearsOfEachVectorWhoseDeliveryChanged) {
  std::vector<std::pair<uint16_t, bool>> seen;
  msix->set_mask_observer([&](uint16_t v) { seen.emplace_back(v, msix->masked(v)); });
  program(2, 0xfee00000, 0x31);
  table_write32(2, 12, 0);  // unmasked entry, but MSI-X is still off
  EXPECT_TRUE(seen.empty());
  msix->set_message_control(Msix::kControlEnable);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], (std::pair<uint16_t, bool>{2, false}));
  table_write32(2, 8, 0x32);  // a new message alone changes no mask
  EXPECT_EQ(seen.size(), 1u);
  msix->set_message_control(Msix::kControlEnable | Msix::kControlFunctionMask);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[1], (std::pair<uint16_t, bool>{2, true}));
}

}  // namespace
}  // namespace ioasis::devices
