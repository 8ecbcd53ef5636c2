#include "devices/vfio/vfio_user_messages.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace ioasis::devices::vfio_user {
namespace {

std::vector<uint8_t> version_with(const std::string& json) {
  std::vector<uint8_t> out;
  append(out, Version{0, 1});
  out.insert(out.end(), json.begin(), json.end());
  out.push_back(0);
  return out;
}

TEST(VfioUserMessagesTest, VersionRoundTripsCapabilities) {
  VersionMessage v;
  v.capabilities.max_msg_fds = 4;
  v.capabilities.max_data_xfer_size = 65536;
  v.capabilities.pgsizes = 4096;
  v.capabilities.max_dma_maps = 10;
  auto back = parse_version(encode_version(v));
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(back->capabilities.max_msg_fds, 4u);
  EXPECT_EQ(back->capabilities.max_data_xfer_size, 65536u);
  EXPECT_EQ(back->capabilities.pgsizes, std::optional<uint64_t>(4096));
  EXPECT_EQ(back->capabilities.max_dma_maps, std::optional<uint32_t>(10));
}

TEST(VfioUserMessagesTest, VersionWithoutDataTakesTheSpecDefaults) {
  std::vector<uint8_t> bare;
  append(bare, Version{0, 1});
  auto v = parse_version(bare);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->capabilities.max_msg_fds, kDefaultMaxMsgFds);
  EXPECT_EQ(v->capabilities.max_data_xfer_size, kDefaultMaxDataXferSize);
}

TEST(VfioUserMessagesTest, VersionRejectsBadJsonAndBadCapabilityTypes) {
  EXPECT_FALSE(parse_version(version_with("{not json")).ok());
  EXPECT_FALSE(parse_version(version_with(R"({"capabilities": 3})")).ok());
  EXPECT_FALSE(parse_version(version_with(R"({"capabilities": {"max_msg_fds": "8"}})")).ok());
  EXPECT_FALSE(parse_version(version_with(R"({"capabilities": {"max_msg_fds": -1}})")).ok());
  auto unterminated = version_with("{}");
  unterminated.pop_back();
  EXPECT_FALSE(parse_version(unterminated).ok());
  EXPECT_FALSE(parse_version(std::vector<uint8_t>{0, 0}).ok());
}

TEST(VfioUserMessagesTest, SparseMmapAreasRoundTrip) {
  RegionInfo info{2,
                  VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_MMAP,
                  0x4000,
                  0x1000,
                  {{0, 0x1000}, {0x2000, 0x2000}}};
  auto bytes = encode_region_info(info, 4096);
  auto back = parse_region_info(bytes, 2, 1);
  ASSERT_TRUE(back.ok()) << back.error().message();
  ASSERT_EQ(back->mmap_areas.size(), 2u);
  EXPECT_EQ(back->mmap_areas[1].offset, 0x2000u);
  EXPECT_EQ(back->mmap_areas[1].size, 0x2000u);
  EXPECT_EQ(back->mmap_offset, 0x1000u);
}

TEST(VfioUserMessagesTest, RegionInfoTooBigForArgszIsCutToTheFixedPart) {
  RegionInfo info{2, VFIO_REGION_INFO_FLAG_MMAP, 0x4000, 0, {{0, 0x1000}}};
  auto bytes = encode_region_info(info, sizeof(vfio_region_info));
  ASSERT_EQ(bytes.size(), sizeof(vfio_region_info));
  vfio_region_info raw;
  std::memcpy(&raw, bytes.data(), sizeof(raw));
  EXPECT_GT(raw.argsz, sizeof(vfio_region_info));  // tells the client what it needs
}

TEST(VfioUserMessagesTest, RegionInfoChecksIndexFdsAndAreaBounds) {
  RegionInfo info{2, VFIO_REGION_INFO_FLAG_MMAP, 0x4000, 0, {{0x3000, 0x2000}}};
  auto bytes = encode_region_info(info, 4096);
  EXPECT_FALSE(parse_region_info(bytes, 2, 1).ok());  // area runs past the region
  info.mmap_areas = {{0, 0x1000}};
  bytes = encode_region_info(info, 4096);
  EXPECT_FALSE(parse_region_info(bytes, 3, 1).ok());  // answers another index
  EXPECT_FALSE(parse_region_info(bytes, 2, 0).ok());  // mmappable without an fd
  EXPECT_FALSE(parse_region_info(bytes, 2, 2).ok());  // two fds
  info.flags = 0;
  EXPECT_FALSE(parse_region_info(encode_region_info(info, 4096), 2, 1).ok());  // stray fd
}

TEST(VfioUserMessagesTest, LoopingCapabilityChainIsRejected) {
  RegionInfo info{2, VFIO_REGION_INFO_FLAG_MMAP, 0x4000, 0, {{0, 0x1000}}};
  auto bytes = encode_region_info(info, 4096);
  // Point the sparse capability's next at itself.
  uint32_t self = sizeof(vfio_region_info);
  std::memcpy(bytes.data() + self + offsetof(vfio_info_cap_header, next), &self, 4);
  auto r = parse_region_info(bytes, 2, 1);
  EXPECT_FALSE(r.ok());
}

TEST(VfioUserMessagesTest, RegionReadReplyMustEchoTheRequestAndCarryItsBytes) {
  RegionAccess request{0x10, 0, 4};
  std::vector<uint8_t> good;
  append(good, request);
  good.insert(good.end(), {1, 2, 3, 4});
  auto data = parse_region_read_reply(good, request);
  ASSERT_TRUE(data.ok());
  EXPECT_EQ((*data)[3], 4);
  auto wrong_offset = good;
  wrong_offset[0] = 0x11;
  EXPECT_FALSE(parse_region_read_reply(wrong_offset, request).ok());
  auto short_data = good;
  short_data.pop_back();
  EXPECT_FALSE(parse_region_read_reply(short_data, request).ok());
}

TEST(VfioUserMessagesTest, DmaWriteReplyAcceptsFourAndEightByteCounts) {
  DmaAccess request{0x1000, 64};
  std::vector<uint8_t> eight;
  append(eight, request);
  EXPECT_TRUE(parse_dma_write_reply(eight, request).ok());
  std::vector<uint8_t> four(eight.begin(), eight.begin() + 12);
  EXPECT_TRUE(parse_dma_write_reply(four, request).ok());
  EXPECT_FALSE(parse_dma_write_reply({eight.data(), 8}, request).ok());
}

TEST(VfioUserMessagesTest, DeviceInfoWithAbsurdCountsIsRejected) {
  DeviceInfo info{16, VFIO_DEVICE_FLAGS_PCI, 1000, 5};
  std::vector<uint8_t> bytes;
  append(bytes, info);
  EXPECT_FALSE(parse_device_info(bytes).ok());
}

}  // namespace
}  // namespace ioasis::devices::vfio_user
