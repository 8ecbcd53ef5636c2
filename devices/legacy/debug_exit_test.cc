#include "devices/legacy/debug_exit.h"

#include <gtest/gtest.h>

#include <optional>

namespace ioasis::devices {
namespace {

TEST(DebugExit, DwordWritePassesTheValue) {
  std::optional<uint32_t> got;
  DebugExit port([&](uint32_t v) { got = v; });
  uint32_t value = 0x12345678;
  port.write(0, std::span(reinterpret_cast<const uint8_t*>(&value), 4));
  EXPECT_EQ(got, 0x12345678u);
}

TEST(DebugExit, ByteWritePassesTheByte) {
  std::optional<uint32_t> got;
  DebugExit port([&](uint32_t v) { got = v; });
  uint8_t value = 3;
  port.write(0, std::span<const uint8_t>(&value, 1));
  EXPECT_EQ(got, 3u);
}

TEST(DebugExit, ZeroIsReportedAsAnExitToo) {
  int calls = 0;
  std::optional<uint32_t> got;
  DebugExit port([&](uint32_t v) {
    got = v;
    ++calls;
  });
  uint32_t value = 0;
  port.write(0, std::span(reinterpret_cast<const uint8_t*>(&value), 4));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(got, 0u);
}

TEST(DebugExit, AccessPastThePortIsIgnored) {
  bool called = false;
  DebugExit port([&](uint32_t) { called = true; });
  uint32_t value = 1;
  port.write(2, std::span(reinterpret_cast<const uint8_t*>(&value), 4));
  EXPECT_FALSE(called);
}

}  // namespace
}  // namespace ioasis::devices
