#include "iommu/ioasid_context.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include "base/fd.h"
#include "iommu/backends/software.h"
#include "iommu/testing/recording_backend.h"

namespace ioasis::iommu {
namespace {

using testing::RecordingBackend;

constexpr uint64_t kMiB = 1 << 20;
const Hva kHost(0x7f0000000000);  // never dereferenced by these tests

HostRange host_at(uint64_t offset, uint64_t length) { return HostRange{kHost + offset, length}; }

class IoasidContextTest : public ::testing::Test {
 protected:
  DeviceId join(const std::string& name, std::optional<GroupId> group = std::nullopt,
                std::shared_ptr<DmaBackend> backend = nullptr) {
    if (!backend) backend = std::make_shared<SoftwareBackend>();
    auto id = ctx.join(DeviceSpec{name, group, backend});
    EXPECT_TRUE(id.ok()) << id.error().message();
    return *id;
  }
  IoasId create() { return *ctx.create_ioas(IoasKind::kHostManaged); }

  IoasidContext ctx;
};

TEST_F(IoasidContextTest, UnmapThatSplitsAMappingFailsAndRemovesNothing) {
  IoasId x = create();
  ASSERT_TRUE(ctx.map(x, Iova(0x10000), host_at(0, 0x4000), Perm::kReadWrite).ok());
  ASSERT_TRUE(ctx.map(x, Iova(0x20000), host_at(0x4000, 0x1000), Perm::kRead).ok());
  auto r = ctx.unmap(x, Iova(0x11000), 0x20000);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::kInvalidArgument);
  EXPECT_NE(r.error().message().find("split"), std::string::npos);
  EXPECT_EQ(ctx.stats(x)->mappings, 2u);
  EXPECT_EQ(ctx.stats(x)->mapped_bytes, 0x5000u);
}

TEST_F(IoasidContextTest, UnmapReturnsBytesOfTheMappingsItCovers) {
  IoasId x = create();
  ASSERT_TRUE(ctx.map(x, Iova(0x10000), host_at(0, 0x4000), Perm::kRead).ok());
  ASSERT_TRUE(ctx.map(x, Iova(0x20000), host_at(0x4000, 0x2000), Perm::kRead).ok());
  ASSERT_TRUE(ctx.map(x, Iova(0x30000), host_at(0x6000, 0x1000), Perm::kRead).ok());
  auto r = ctx.unmap(x, Iova(0x10000), 0x20000);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(*r, 0x6000u);
  EXPECT_EQ(ctx.stats(x)->mappings, 1u);
}

TEST_F(IoasidContextTest, UnmapOfNothingMappedIsNotFound) {
  IoasId x = create();
  ASSERT_TRUE(ctx.map(x, Iova(0x10000), host_at(0, 0x1000), Perm::kRead).ok());
  auto r = ctx.unmap(x, Iova(0x20000), 0x1000);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::kNotFound);
}

TEST_F(IoasidContextTest, UnmapOfZeroToMaxRemovesEverything) {
  IoasId x = create();
  EXPECT_EQ(*ctx.unmap(x, Iova(0), UINT64_MAX), 0u);  // empty: succeeds, as in iommufd
  ASSERT_TRUE(ctx.map(x, Iova(0), host_at(0, 0x1000), Perm::kRead).ok());
  ASSERT_TRUE(ctx.map(x, Iova(0xfffffffffffff000), host_at(0x1000, 0x1000), Perm::kRead).ok());
  ASSERT_TRUE(ctx.map(x, std::nullopt, host_at(0x2000, 0x3000), Perm::kWrite).ok());
  auto r = ctx.unmap(x, Iova(0), UINT64_MAX);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 0x5000u);
  EXPECT_EQ(ctx.stats(x)->mappings, 0u);
  EXPECT_EQ(ctx.stats().pinned_bytes, 0u);
}

TEST_F(IoasidContextTest, OverlappingFixedMapFailsAndChangesNothing) {
  IoasId x = create();
  ASSERT_TRUE(ctx.map(x, Iova(0x10000), host_at(0, 0x4000), Perm::kRead).ok());
  auto r = ctx.map(x, Iova(0x13000), host_at(0x10000, 0x2000), Perm::kRead);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::kAlreadyExists);
  EXPECT_EQ(ctx.stats(x)->mappings, 1u);
  EXPECT_EQ(ctx.stats().pinned_bytes, 0x4000u);
  EXPECT_TRUE(ctx.map(x, Iova(0x14000), host_at(0x10000, 0x2000), Perm::kRead).ok());
}

TEST_F(IoasidContextTest, MapRejectsUnalignedOrEmptyOrWrappingRanges) {
  IoasId x = create();
  EXPECT_EQ(ctx.map(x, Iova(0x10800), host_at(0, 0x1000), Perm::kRead).error().code(),
            Errc::kInvalidArgument);
  EXPECT_EQ(ctx.map(x, Iova(0x10000), host_at(0, 0x800), Perm::kRead).error().code(),
            Errc::kInvalidArgument);
  EXPECT_EQ(ctx.map(x, Iova(0x10000), host_at(0, 0), Perm::kRead).error().code(),
            Errc::kInvalidArgument);
  EXPECT_EQ(ctx.map(x, Iova(0xfffffffffffff000), host_at(0, 0x2000), Perm::kRead).error().code(),
            Errc::kInvalidArgument);
  EXPECT_EQ(ctx.map(x, Iova(0x10000), host_at(0, 0x1000), Perm::kNone).error().code(),
            Errc::kInvalidArgument);
  EXPECT_EQ(ctx.map(IoasId{99}, Iova(0), host_at(0, 0x1000), Perm::kRead).error().code(),
            Errc::kNotFound);
}

TEST_F(IoasidContextTest, AutoIovaKeepsTheHostAlignment) {
  IoasId x = create();
  ASSERT_TRUE(ctx.map(x, Iova(0), host_at(0, 0x1000), Perm::kRead).ok());
  auto a = ctx.map(x, std::nullopt, host_at(2 * kMiB, 2 * kMiB), Perm::kRead);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->value % (2 * kMiB), 0u);
  auto b = ctx.map(x, std::nullopt, host_at(0x3000, 0x1000), Perm::kRead);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->value % kPageSize, 0u);
  EXPECT_NE(*a, *b);
}

TEST_F(IoasidContextTest, AutoIovaAvoidsReservedRanges) {
  IoasidContext c(ContextOptions{.reserved = {{Iova(0), Iova(0xfeefffff)}}});
  IoasId x = *c.create_ioas(IoasKind::kHostManaged);
  ASSERT_TRUE(c.reserve_iovas(x, {Iova(0xfef00000), Iova(0xfeffffff)}).ok());
  auto a = c.map(x, std::nullopt, host_at(0, 0x10000), Perm::kRead);
  ASSERT_TRUE(a.ok());
  EXPECT_GE(a->value, 0xff000000u);
}

TEST_F(IoasidContextTest, FixedMapIntoReservedRangeFails) {
  IoasidContext c(ContextOptions{.reserved = {{Iova(0xfee00000), Iova(0xfeefffff)}}});
  IoasId x = *c.create_ioas(IoasKind::kGuestRam);
  auto r = c.map(x, Iova(0xfe000000), host_at(0, 0x1000000), Perm::kRead);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::kInvalidArgument);
  auto ranges = *c.iova_ranges(x);
  ASSERT_EQ(ranges.size(), 2u);
  EXPECT_EQ(ranges[0].last, Iova(0xfedfffff));
  EXPECT_EQ(ranges[1].first, Iova(0xfef00000));
}

TEST_F(IoasidContextTest, AutoIovaStaysInsideAllowedRanges) {
  IoasId x = create();
  ASSERT_TRUE(
      ctx.allow_iovas(x, {{Iova(0x100000), Iova(0x103fff)}, {Iova(0x200000), Iova(0x2fffff)}})
          .ok());
  auto a = ctx.map(x, std::nullopt, host_at(0, 0x4000), Perm::kRead);
  auto b = ctx.map(x, std::nullopt, host_at(0x4000, 0x4000), Perm::kRead);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->value, 0x100000u);
  EXPECT_GE(b->value, 0x200000u);
  EXPECT_LE(b->value + 0x3fff, 0x2fffffu);
  auto full = ctx.map(x, std::nullopt, host_at(0, 0x100000), Perm::kRead);
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().code(), Errc::kResourceExhausted);
}

TEST_F(IoasidContextTest, AllowedRangeMayNotIntersectReservedOne) {
  IoasId x = create();
  ASSERT_TRUE(ctx.reserve_iovas(x, {Iova(0xfee00000), Iova(0xfeefffff)}).ok());
  auto r = ctx.allow_iovas(x, {{Iova(0xf0000000), Iova(0xffffffff)}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::kFailedPrecondition);
  ASSERT_TRUE(ctx.allow_iovas(x, {{Iova(0x1000), Iova(0xffff)}}).ok());
  EXPECT_FALSE(ctx.reserve_iovas(x, {Iova(0x8000), Iova(0x8fff)}).ok());
}

TEST_F(IoasidContextTest, ReservingAMappedRangeFails) {
  IoasId x = create();
  ASSERT_TRUE(ctx.map(x, Iova(0x10000), host_at(0, 0x1000), Perm::kRead).ok());
  EXPECT_EQ(ctx.reserve_iovas(x, {Iova(0x10000), Iova(0x10fff)}).error().code(),
            Errc::kFailedPrecondition);
}

TEST_F(IoasidContextTest, DestroyWithDeviceAttachedIsBusy) {
  IoasId x = create();
  DeviceId d = join("nic");
  ASSERT_TRUE(ctx.attach(d, x).ok());
  auto r = ctx.destroy_ioas(x);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::kFailedPrecondition);
  EXPECT_NE(r.error().message().find("busy"), std::string::npos);
  ASSERT_TRUE(ctx.detach(d).ok());
  EXPECT_TRUE(ctx.destroy_ioas(x).ok());
  EXPECT_EQ(ctx.info(x).error().code(), Errc::kNotFound);
}

TEST_F(IoasidContextTest, DestroyDropsMappingsAndTheirPins) {
  IoasId x = create();
  ASSERT_TRUE(ctx.map(x, Iova(0), host_at(0, 0x8000), Perm::kRead).ok());
  EXPECT_EQ(ctx.stats().pinned_bytes, 0x8000u);
  ASSERT_TRUE(ctx.destroy_ioas(x).ok());
  EXPECT_EQ(ctx.stats().pinned_bytes, 0u);
}

TEST_F(IoasidContextTest, AttachingASmallerApertureNarrowsIovaRanges) {
  IoasId x = create();
  auto narrow = std::make_shared<SoftwareBackend>(
      Aperture{{Iova(0x1000), Iova((uint64_t{1} << 39) - 1)}, kPageSize});
  DeviceId d = join("old-nic", std::nullopt, narrow);
  ASSERT_TRUE(ctx.attach(d, x).ok());
  auto ranges = *ctx.iova_ranges(x);
  ASSERT_EQ(ranges.size(), 1u);
  EXPECT_EQ(ranges[0], (IovaRange{Iova(0x1000), Iova((uint64_t{1} << 39) - 1)}));
  EXPECT_FALSE(ctx.map(x, Iova(uint64_t{1} << 40), host_at(0, 0x1000), Perm::kRead).ok());
  ASSERT_TRUE(ctx.detach(d).ok());
  EXPECT_EQ(ctx.iova_ranges(x)->front(), (IovaRange{Iova(0), Iova(UINT64_MAX)}));
}

TEST_F(IoasidContextTest, AttachingALargerPageSizeRaisesTheAlignment) {
  IoasId x = create();
  DeviceId d =
      join("big-pages", std::nullopt,
           std::make_shared<SoftwareBackend>(Aperture{{Iova(0), Iova(UINT64_MAX)}, 0x10000}));
  EXPECT_EQ(*ctx.iova_alignment(x), kPageSize);
  ASSERT_TRUE(ctx.attach(d, x).ok());
  EXPECT_EQ(*ctx.iova_alignment(x), 0x10000u);
  EXPECT_FALSE(ctx.map(x, Iova(0x11000), host_at(0, 0x10000), Perm::kRead).ok());
  EXPECT_FALSE(ctx.map(x, Iova(0x10000), host_at(0, 0x1000), Perm::kRead).ok());
  EXPECT_TRUE(ctx.map(x, Iova(0x10000), host_at(0, 0x10000), Perm::kRead).ok());
}

TEST_F(IoasidContextTest, AttachIsRefusedWhenMappingsLieOutsideTheAperture) {
  IoasId x = create();
  ASSERT_TRUE(ctx.map(x, Iova(uint64_t{1} << 40), host_at(0, 0x1000), Perm::kRead).ok());
  DeviceId d = join("narrow", std::nullopt,
                    std::make_shared<SoftwareBackend>(
                        Aperture{{Iova(0), Iova((uint64_t{1} << 39) - 1)}, kPageSize}));
  auto r = ctx.attach(d, x);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::kFailedPrecondition);
  EXPECT_FALSE(ctx.attached_to(d).has_value());
  EXPECT_EQ(ctx.iova_ranges(x)->size(), 1u);
}

TEST_F(IoasidContextTest, AttachIsRefusedWhenMappingsDoNotFitTheDevicePageSize) {
  IoasId x = create();
  ASSERT_TRUE(ctx.map(x, Iova(0x11000), host_at(0, 0x1000), Perm::kRead).ok());
  DeviceId d =
      join("big-pages", std::nullopt,
           std::make_shared<SoftwareBackend>(Aperture{{Iova(0), Iova(UINT64_MAX)}, 0x10000}));
  auto r = ctx.attach(d, x);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::kFailedPrecondition);
  EXPECT_EQ(*ctx.iova_alignment(x), kPageSize);
}

TEST_F(IoasidContextTest, AttachIsRefusedWhenAnAllowedRangeLiesOutsideTheAperture) {
  IoasId x = create();
  ASSERT_TRUE(ctx.allow_iovas(x, {{Iova(uint64_t{1} << 40), Iova((uint64_t{1} << 41) - 1)}}).ok());
  DeviceId d = join("narrow", std::nullopt,
                    std::make_shared<SoftwareBackend>(
                        Aperture{{Iova(0), Iova((uint64_t{1} << 39) - 1)}, kPageSize}));
  EXPECT_EQ(ctx.attach(d, x).error().code(), Errc::kFailedPrecondition);
}

TEST_F(IoasidContextTest, GroupMemberCannotAttachToAnotherAddressSpace) {
  IoasId a = create();
  IoasId b = create();
  DeviceId fn0 = join("nvme-fn0", GroupId{7});
  DeviceId fn1 = join("nvme-fn1", GroupId{7});
  ASSERT_TRUE(ctx.attach(fn0, a).ok());
  auto r = ctx.attach(fn1, b);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::kPermissionDenied);
  const std::string& msg = r.error().message();
  EXPECT_NE(msg.find("nvme-fn0"), std::string::npos) << msg;
  EXPECT_NE(msg.find("nvme-fn1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("group 7"), std::string::npos) << msg;
  EXPECT_FALSE(ctx.attached_to(fn1).has_value());
  EXPECT_TRUE(ctx.attach(fn1, a).ok());
}

TEST_F(IoasidContextTest, DevicesOfDifferentGroupsAttachAnywhere) {
  IoasId a = create();
  IoasId b = create();
  DeviceId d1 = join("d1", GroupId{1});
  DeviceId d2 = join("d2", GroupId{2});
  DeviceId emulated = join("virtio-blk");
  EXPECT_TRUE(ctx.attach(d1, a).ok());
  EXPECT_TRUE(ctx.attach(d2, b).ok());
  EXPECT_TRUE(ctx.attach(emulated, b).ok());
  EXPECT_EQ(ctx.stats(b)->attached_devices, 2u);
}

TEST_F(IoasidContextTest, AGroupMovesTogetherWithReplace) {
  IoasId a = create();
  IoasId b = create();
  DeviceId fn0 = join("fn0", GroupId{3});
  DeviceId fn1 = join("fn1", GroupId{3});
  DeviceId other = join("other", GroupId{4});
  ASSERT_TRUE(ctx.attach(fn0, a).ok());
  ASSERT_TRUE(ctx.attach(fn1, a).ok());
  ASSERT_TRUE(ctx.attach(other, a).ok());
  ASSERT_TRUE(ctx.replace(fn1, b).ok());
  EXPECT_EQ(ctx.attached_to(fn0), b);
  EXPECT_EQ(ctx.attached_to(fn1), b);
  EXPECT_EQ(ctx.attached_to(other), a);
}

TEST_F(IoasidContextTest, AttachTwiceAsksForReplace) {
  IoasId a = create();
  IoasId b = create();
  DeviceId d = join("d");
  ASSERT_TRUE(ctx.attach(d, a).ok());
  auto r = ctx.attach(d, b);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("replace"), std::string::npos);
  EXPECT_EQ(ctx.detach(join("idle")).error().code(), Errc::kFailedPrecondition);
}

TEST_F(IoasidContextTest, JoinRejectsDuplicateNamesAndLeaveRequiresDetach) {
  DeviceId d = join("dup");
  EXPECT_EQ(
      ctx.join(DeviceSpec{"dup", std::nullopt, std::make_shared<SoftwareBackend>()}).error().code(),
      Errc::kAlreadyExists);
  IoasId x = create();
  ASSERT_TRUE(ctx.attach(d, x).ok());
  EXPECT_EQ(ctx.leave(d).error().code(), Errc::kFailedPrecondition);
  ASSERT_TRUE(ctx.detach(d).ok());
  EXPECT_TRUE(ctx.leave(d).ok());
  EXPECT_EQ(ctx.stats().devices, 0u);
}

TEST_F(IoasidContextTest, GuestRamMappedIntoManyAddressSpacesIsPinnedOnce) {
  constexpr uint64_t kRam = 16 * kMiB;
  UniqueFd memfd(memfd_create("guest-ram", MFD_CLOEXEC));
  ASSERT_TRUE(memfd.valid());
  ASSERT_EQ(ftruncate(memfd.get(), kRam), 0);
  constexpr int kSpaces = 5;
  for (int i = 0; i < kSpaces; ++i) {
    IoasId x = create();
    // Each user maps the RAM at its own HVA; the pages are the same memfd pages.
    HostRange ram{Hva(0x7f0000000000 + i * (kRam << 1)), kRam, memfd.get(), 0};
    ASSERT_TRUE(ctx.map(x, Iova(0), ram, Perm::kReadWrite).ok());
    EXPECT_EQ(ctx.stats(x)->pinned_bytes, kRam);
  }
  ContextStats st = ctx.stats();
  EXPECT_EQ(st.mapped_bytes, kSpaces * kRam);
  EXPECT_EQ(st.pinned_bytes, kRam);
}

TEST_F(IoasidContextTest, SameHvaMappedTwiceIsPinnedOnceAndReleasedWithTheLastMapping) {
  IoasId a = create();
  IoasId b = create();
  ASSERT_TRUE(ctx.map(a, Iova(0), host_at(0, 0x10000), Perm::kRead).ok());
  ASSERT_TRUE(ctx.map(b, Iova(0x100000), host_at(0x8000, 0x10000), Perm::kRead).ok());
  EXPECT_EQ(ctx.stats().pinned_bytes, 0x18000u);
  ASSERT_TRUE(ctx.unmap(a, Iova(0), 0x10000).ok());
  EXPECT_EQ(ctx.stats().pinned_bytes, 0x10000u);
  ASSERT_TRUE(ctx.unmap(b, Iova(0), UINT64_MAX).ok());
  EXPECT_EQ(ctx.stats().pinned_bytes, 0u);
}

TEST_F(IoasidContextTest, PinLimitRefusesTheMapAndChangesNothing) {
  IoasidContext c(ContextOptions{.pinned_limit = 0x10000});
  IoasId x = *c.create_ioas(IoasKind::kHostManaged);
  IoasId y = *c.create_ioas(IoasKind::kHostManaged);
  ASSERT_TRUE(c.map(x, Iova(0), host_at(0, 0xc000), Perm::kRead).ok());
  auto r = c.map(x, Iova(0x100000), host_at(0x100000, 0x8000), Perm::kRead);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::kResourceExhausted);
  EXPECT_NE(r.error().message().find("limit"), std::string::npos);
  EXPECT_EQ(c.stats().pinned_bytes, 0xc000u);
  EXPECT_EQ(c.stats(x)->mappings, 1u);
  // Already-pinned pages cost nothing, so the same memory fits into another address space.
  EXPECT_TRUE(c.map(y, Iova(0), host_at(0, 0xc000), Perm::kRead).ok());
  EXPECT_TRUE(c.map(y, Iova(0x100000), host_at(0x100000, 0x4000), Perm::kRead).ok());
  EXPECT_EQ(c.stats().pinned_bytes, 0x10000u);
}

TEST_F(IoasidContextTest, CopySharesPinnedPagesAcrossMappings) {
  IoasId src = create();
  IoasId dst = create();
  ASSERT_TRUE(ctx.map(src, Iova(0x10000), host_at(0, 0x4000), Perm::kRead).ok());
  ASSERT_TRUE(ctx.map(src, Iova(0x14000), host_at(0x20000, 0x4000), Perm::kReadWrite).ok());
  auto at = ctx.copy(src, Iova(0x12000), dst, Iova(0x800000), 0x4000);
  ASSERT_TRUE(at.ok()) << at.error().message();
  EXPECT_EQ(*at, Iova(0x800000));
  EXPECT_EQ(ctx.stats(dst)->mappings, 2u);
  EXPECT_EQ(ctx.stats(dst)->mapped_bytes, 0x4000u);
  EXPECT_EQ(ctx.stats().pinned_bytes, 0x8000u);
  EXPECT_EQ(ctx.copy(src, Iova(0x16000), dst, std::nullopt, 0x4000).error().code(),
            Errc::kNotFound);
}

TEST_F(IoasidContextTest, BackendsMirrorMapsAndGetReplayOnFirstAttach) {
  IoasId x = create();
  auto backend = std::make_shared<RecordingBackend>();
  ASSERT_TRUE(ctx.map(x, Iova(0x10000), host_at(0, 0x1000), Perm::kRead).ok());
  DeviceId d1 = join("d1", std::nullopt, backend);
  DeviceId d2 = join("d2", std::nullopt, backend);
  ASSERT_TRUE(ctx.attach(d1, x).ok());
  ASSERT_TRUE(ctx.attach(d2, x).ok());
  EXPECT_EQ(backend->maps, 1);  // replayed once, not per device
  ASSERT_TRUE(ctx.map(x, Iova(0x20000), host_at(0x1000, 0x1000), Perm::kRead).ok());
  EXPECT_EQ(backend->mirrors[x.value].size(), 2u);
  ASSERT_TRUE(ctx.unmap(x, Iova(0x10000), 0x1000).ok());
  EXPECT_EQ(backend->mirrors[x.value].size(), 1u);
}

TEST_F(IoasidContextTest, BackendRefusingAMapLeavesNothingMapped) {
  IoasId x = create();
  auto good = std::make_shared<RecordingBackend>();
  auto bad = std::make_shared<RecordingBackend>();
  ASSERT_TRUE(ctx.attach(join("good", std::nullopt, good), x).ok());
  ASSERT_TRUE(ctx.attach(join("bad", std::nullopt, bad), x).ok());
  bad->fail_map = true;
  EXPECT_FALSE(ctx.map(x, Iova(0x10000), host_at(0, 0x1000), Perm::kRead).ok());
  EXPECT_EQ(ctx.stats(x)->mappings, 0u);
  EXPECT_EQ(ctx.stats().pinned_bytes, 0u);
  EXPECT_TRUE(good->mirrors[x.value].empty());
}

TEST_F(IoasidContextTest, CopyUsesTheBackendCopyWhenItHoldsBothAddressSpaces) {
  IoasId src = create();
  IoasId dst = create();
  auto backend = std::make_shared<RecordingBackend>();
  backend->copy_supported = true;
  ASSERT_TRUE(ctx.attach(join("a", std::nullopt, backend), src).ok());
  ASSERT_TRUE(ctx.attach(join("b", std::nullopt, backend), dst).ok());
  ASSERT_TRUE(ctx.map(src, Iova(0x10000), host_at(0, 0x2000), Perm::kRead).ok());
  ASSERT_TRUE(ctx.copy(src, Iova(0x10000), dst, Iova(0x40000), 0x2000).ok());
  EXPECT_EQ(backend->copies, 1);
  EXPECT_EQ(backend->mirrors[dst.value].count(0x40000), 1u);
}

TEST_F(IoasidContextTest, ReplaceReplaysMappingsIntoABackendNewToTheTarget) {
  IoasId a = create();
  IoasId b = create();
  auto backend = std::make_shared<RecordingBackend>();
  ASSERT_TRUE(ctx.map(b, Iova(0x10000), host_at(0, 0x3000), Perm::kRead).ok());
  DeviceId d = join("d", std::nullopt, backend);
  ASSERT_TRUE(ctx.attach(d, a).ok());
  ASSERT_TRUE(ctx.replace(d, b).ok());
  EXPECT_EQ(backend->mirrors[b.value].count(0x10000), 1u);
  EXPECT_EQ(backend->where[d.value], b.value);
  EXPECT_EQ(ctx.stats(a)->attached_devices, 0u);
  EXPECT_EQ(ctx.stats(b)->attached_devices, 1u);
}

TEST_F(IoasidContextTest, StatsCountAddressSpacesDevicesAndMappings) {
  IoasId a = create();
  IoasId b = create();
  DeviceId d = join("d");
  join("idle");
  ASSERT_TRUE(ctx.attach(d, a).ok());
  ASSERT_TRUE(ctx.map(a, Iova(0), host_at(0, 0x2000), Perm::kRead).ok());
  ASSERT_TRUE(ctx.map(b, Iova(0), host_at(0, 0x1000), Perm::kRead).ok());
  ContextStats st = ctx.stats();
  EXPECT_EQ(st.address_spaces, 2u);
  EXPECT_EQ(st.devices, 2u);
  EXPECT_EQ(st.attached_devices, 1u);
  EXPECT_EQ(st.mappings, 2u);
  EXPECT_EQ(st.mapped_bytes, 0x3000u);
  EXPECT_EQ(st.pinned_bytes, 0x2000u);
  EXPECT_EQ(ctx.info(a)->kind, IoasKind::kHostManaged);
  EXPECT_EQ(ctx.list().size(), 2u);
}

}  // namespace
}  // namespace ioasis::iommu

namespace ioasis::iommu {
namespace {

TEST_F(IoasidContextTest, MappingsListInIovaOrderAPageAtATime) {
  IoasId x = create();
  for (uint64_t i = 0; i < 5; ++i) {
    ASSERT_TRUE(
        ctx.map(x, Iova(0x100000 * (5 - i)), host_at(i * 0x2000, 0x2000), Perm::kRead).ok());
  }
  auto first = ctx.mappings(x, Iova(0), 2);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->size(), 2u);
  EXPECT_EQ((*first)[0].iova, Iova(0x100000));
  EXPECT_EQ((*first)[0].host.hva, kHost + 4 * 0x2000);
  EXPECT_EQ((*first)[0].host.length, 0x2000u);
  EXPECT_EQ((*first)[1].iova, Iova(0x200000));
  // Resuming inside a mapping includes that mapping.
  auto rest = ctx.mappings(x, Iova(0x300001), 10);
  ASSERT_EQ(rest->size(), 3u);
  EXPECT_EQ((*rest)[0].iova, Iova(0x300000));
  EXPECT_EQ(ctx.mappings(IoasId{999}, Iova(0), 1).error().code(), Errc::kNotFound);
}

TEST_F(IoasidContextTest, DevicesListsWhatIsAttached) {
  IoasId x = create();
  DeviceId a = join("a"), b = join("b");
  ASSERT_TRUE(ctx.attach(a, x).ok());
  ASSERT_TRUE(ctx.attach(b, x).ok());
  ASSERT_TRUE(ctx.detach(a).ok());
  EXPECT_EQ(*ctx.devices(x), std::vector<DeviceId>{b});
}

}  // namespace
}  // namespace ioasis::iommu
