#include "devices/virtio/iommu_request.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace ioasis::devices::virtio_iommu {
namespace {

template <typename Body>
std::vector<uint8_t> bytes_of(const Body& body) {
  std::vector<uint8_t> out(sizeof(Body));
  std::memcpy(out.data(), &body, sizeof(Body));
  return out;
}

constexpr uint32_t kProbeSize = 512;

TEST(ViommuRequestTest, ParsesAttachFields) {
  AttachBody b{};
  b.head.type = kTAttach;
  b.domain = 7;
  b.endpoint = 0x18;
  b.flags = kAttachFBypass;
  auto p = parse_request(bytes_of(b), sizeof(ReqTail), kProbeSize);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->status, kSOk);
  EXPECT_EQ(p->tail_offset, 0u);
  auto& req = std::get<AttachRequest>(p->request);
  EXPECT_EQ(req.domain, 7u);
  EXPECT_EQ(req.endpoint, 0x18u);
  EXPECT_EQ(req.flags, kAttachFBypass);
  EXPECT_FALSE(req.reserved_set);
}

TEST(ViommuRequestTest, FlagsNonZeroReservedBytesOfAttachAndUnmap) {
  AttachBody a{};
  a.head.type = kTAttach;
  a.reserved[3] = 1;
  auto pa = parse_request(bytes_of(a), sizeof(ReqTail), kProbeSize);
  ASSERT_TRUE(pa.has_value());
  EXPECT_TRUE(std::get<AttachRequest>(pa->request).reserved_set);

  UnmapBody u{};
  u.head.type = kTUnmap;
  u.reserved[0] = 0x80;
  auto pu = parse_request(bytes_of(u), sizeof(ReqTail), kProbeSize);
  ASSERT_TRUE(pu.has_value());
  EXPECT_TRUE(std::get<UnmapRequest>(pu->request).reserved_set);
}

TEST(ViommuRequestTest, IgnoresReservedBytesOfHeadDetachAndProbe) {
  DetachBody d{};
  d.head.type = kTDetach;
  d.head.reserved[1] = 0xff;
  std::memset(d.reserved, 0xff, sizeof(d.reserved));
  d.endpoint = 3;
  auto p = parse_request(bytes_of(d), sizeof(ReqTail), kProbeSize);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->status, kSOk);
  EXPECT_EQ(std::get<DetachRequest>(p->request).endpoint, 3u);
}

TEST(ViommuRequestTest, ParsesMapFields) {
  MapBody m{};
  m.head.type = kTMap;
  m.domain = 1;
  m.virt_start = 0x1000;
  m.virt_end = 0x1fff;
  m.phys_start = 0xa000;
  m.flags = kMapFRead;
  auto p = parse_request(bytes_of(m), sizeof(ReqTail), kProbeSize);
  ASSERT_TRUE(p.has_value());
  auto& req = std::get<MapRequest>(p->request);
  EXPECT_EQ(req.virt_start, 0x1000u);
  EXPECT_EQ(req.virt_end, 0x1fffu);
  EXPECT_EQ(req.phys_start, 0xa000u);
  EXPECT_EQ(req.flags, kMapFRead);
}

TEST(ViommuRequestTest, UnknownTypeIsNotWritten) {
  ReqHead h{0x42, {}};
  EXPECT_FALSE(parse_request(bytes_of(h), sizeof(ReqTail), kProbeSize).has_value());
  ReqHead zero{0, {}};
  EXPECT_FALSE(parse_request(bytes_of(zero), sizeof(ReqTail), kProbeSize).has_value());
}

TEST(ViommuRequestTest, BufferWithoutRoomForTheTailIsNotWritten) {
  MapBody m{};
  m.head.type = kTMap;
  EXPECT_FALSE(parse_request(bytes_of(m), sizeof(ReqTail) - 1, kProbeSize).has_value());
  EXPECT_FALSE(parse_request({}, sizeof(ReqTail), kProbeSize).has_value());
}

TEST(ViommuRequestTest, BodyShorterThanItsTypeIsInval) {
  MapBody m{};
  m.head.type = kTMap;
  auto bytes = bytes_of(m);
  bytes.resize(sizeof(MapBody) - 1);
  auto p = parse_request(bytes, sizeof(ReqTail), kProbeSize);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->status, kSInval);
  EXPECT_EQ(p->tail_offset, 0u);
}

TEST(ViommuRequestTest, LongerBodyIsAcceptedForFutureExtensions) {
  AttachBody a{};
  a.head.type = kTAttach;
  a.endpoint = 9;
  auto bytes = bytes_of(a);
  bytes.resize(bytes.size() + 16, 0xee);
  auto p = parse_request(bytes, sizeof(ReqTail), kProbeSize);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->status, kSOk);
  EXPECT_EQ(std::get<AttachRequest>(p->request).endpoint, 9u);
}

TEST(ViommuRequestTest, ProbeTailFollowsProbeSizeBytesOfProperties) {
  ProbeBody b{};
  b.head.type = kTProbe;
  b.endpoint = 0x20;
  auto p = parse_request(bytes_of(b), kProbeSize + sizeof(ReqTail), kProbeSize);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->status, kSOk);
  EXPECT_EQ(p->tail_offset, kProbeSize);
  EXPECT_EQ(std::get<ProbeRequest>(p->request).endpoint, 0x20u);
}

TEST(ViommuRequestTest, ProbeWithPropertiesSmallerThanProbeSizeIsInvalAtTheBufferEnd) {
  ProbeBody b{};
  b.head.type = kTProbe;
  auto p = parse_request(bytes_of(b), 64 + sizeof(ReqTail), kProbeSize);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->status, kSInval);
  EXPECT_EQ(p->tail_offset, 64u);
}

TEST(ViommuRequestTest, StatusReplyIsAZeroedTailWithTheStatus) {
  Reply r = status_reply(12, kSRange);
  EXPECT_EQ(r.offset, 12u);
  ASSERT_EQ(r.bytes.size(), sizeof(ReqTail));
  EXPECT_EQ(r.status(), kSRange);
  EXPECT_EQ(r.bytes[1] | r.bytes[2] | r.bytes[3], 0);
  EXPECT_EQ(r.used_length(), 16u);
  EXPECT_STREQ(status_name(kSRange), "S_RANGE");
}

}  // namespace
}  // namespace ioasis::devices::virtio_iommu
