#include "devices/bus/bus.h"

#include <gtest/gtest.h>

#include <vector>

namespace ioasis::devices {
namespace {

class Recorder : public BusDevice {
 public:
  void read(uint64_t offset, std::span<uint8_t> data) override {
    for (auto& b : data) b = static_cast<uint8_t>(offset);
  }
  void write(uint64_t offset, std::span<const uint8_t> data) override {
    writes.emplace_back(offset, data[0]);
  }
  std::vector<std::pair<uint64_t, uint8_t>> writes;
};

TEST(Bus, DispatchesWithOffsetsRelativeToBase) {
  Bus bus("pio");
  auto dev = std::make_shared<Recorder>();
  ASSERT_TRUE(bus.insert(dev, 0x3f8, 8).ok());
  uint8_t b = 0;
  EXPECT_TRUE(bus.read(0x3fd, std::span(&b, 1)));
  EXPECT_EQ(b, 5);
  uint8_t v = 0x41;
  EXPECT_TRUE(bus.write(0x3f8, std::span<const uint8_t>(&v, 1)));
  ASSERT_EQ(dev->writes.size(), 1u);
  EXPECT_EQ(dev->writes[0], std::make_pair(uint64_t{0}, uint8_t{0x41}));
  EXPECT_FALSE(bus.read(0x400, std::span(&b, 1)));
  EXPECT_FALSE(bus.read(0x3f7, std::span(&b, 1)));
}

TEST(Bus, RefusesOverlapsAndWrappingRanges) {
  Bus bus("mmio");
  auto dev = std::make_shared<Recorder>();
  ASSERT_TRUE(bus.insert(dev, 0x1000, 0x1000).ok());
  EXPECT_EQ(bus.insert(dev, 0x1fff, 1).error().code(), Errc::kAlreadyExists);
  EXPECT_EQ(bus.insert(dev, 0x0800, 0x801).error().code(), Errc::kAlreadyExists);
  EXPECT_TRUE(bus.insert(dev, 0x2000, 0x10).ok());
  EXPECT_EQ(bus.insert(dev, UINT64_MAX, 2).error().code(), Errc::kInvalidArgument);
  EXPECT_TRUE(bus.remove(0x1000).ok());
  EXPECT_EQ(bus.remove(0x1000).error().code(), Errc::kNotFound);
}

}  // namespace
}  // namespace ioasis::devices
