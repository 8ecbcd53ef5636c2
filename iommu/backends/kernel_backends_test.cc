// The kernel DMA backends, driven through the IoasidContext against the fake of the uAPI, and
// uAPI conformance checks that run against the fake and, where /dev/iommu exists, the kernel.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

#include "base/fd.h"
#include "iommu/backends/iommufd.h"
#include "iommu/backends/vfio_type1.h"
#include "iommu/ioasid_context.h"
#include "iommu/testing/fake_kernel.h"
#include "iommu/uapi/iommufd.h"

namespace ioasis::iommu {
namespace {

using testing::FakeKernel;

// ---- uAPI conformance: the same expectations for the fake and the real kernel ----

class IommufdUapi : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) {
      if (access("/dev/iommu", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/iommu on this host";
      io_ = &KernelIo::system();
    } else {
      io_ = &fake_;
    }
    auto fd = open_kernel_fd(*io_, "/dev/iommu", O_RDWR);
    ASSERT_TRUE(fd.ok()) << fd.error().message();
    fd_ = std::move(*fd);
    auto mem =
        MappedRegion::map(0x10000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_TRUE(mem.ok());
    mem_ = std::move(*mem);
    iommu_ioas_alloc alloc{sizeof(alloc), 0, 0};
    ASSERT_EQ(io_->ioctl(fd_.get(), IOMMU_IOAS_ALLOC, &alloc), 0);
    ioas_ = alloc.out_ioas_id;
  }
  int map(uint64_t iova, uint64_t length,
          uint32_t flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE) {
    iommu_ioas_map m{};
    m.size = sizeof(m);
    m.flags = flags;
    m.ioas_id = ioas_;
    m.user_va = reinterpret_cast<uintptr_t>(mem_.data());
    m.length = length;
    m.iova = iova;
    return io_->ioctl(fd_.get(), IOMMU_IOAS_MAP, &m);
  }
  int unmap(uint64_t iova, uint64_t length) {
    iommu_ioas_unmap u{sizeof(u), ioas_, iova, length};
    return io_->ioctl(fd_.get(), IOMMU_IOAS_UNMAP, &u);
  }

  FakeKernel fake_;
  KernelIo* io_ = nullptr;
  KernelFd fd_;
  MappedRegion mem_;
  uint32_t ioas_ = 0;
};

TEST_P(IommufdUapi, OverlappingFixedMapIsEexist) {
  ASSERT_EQ(map(0x100000, 0x4000), 0);
  EXPECT_EQ(map(0x102000, 0x4000), -EEXIST);
}

TEST_P(IommufdUapi, UnknownMapFlagIsEopnotsupp) {
  EXPECT_EQ(map(0x100000, 0x1000, IOMMU_IOAS_MAP_FIXED_IOVA | (1u << 20)), -EOPNOTSUPP);
}

TEST_P(IommufdUapi, ShortStructIsEinval) {
  iommu_ioas_map m{};
  m.size = 8;
  EXPECT_EQ(io_->ioctl(fd_.get(), IOMMU_IOAS_MAP, &m), -EINVAL);
}

TEST_P(IommufdUapi, UnmapThatSplitsAMappingIsEnoentAndUnmapAllOfEmptySucceeds) {
  ASSERT_EQ(map(0x100000, 0x4000), 0);
  EXPECT_EQ(unmap(0x101000, 0x1000), -ENOENT);
  EXPECT_EQ(unmap(0x100000, 0x4000), 0);
  EXPECT_EQ(unmap(0, UINT64_MAX), 0);
}

TEST_P(IommufdUapi, UnknownIoasIsEnoent) {
  iommu_destroy d{sizeof(d), 0xdead};
  EXPECT_EQ(io_->ioctl(fd_.get(), IOMMU_DESTROY, &d), -ENOENT);
}

INSTANTIATE_TEST_SUITE_P(FakeAndKernel, IommufdUapi, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Kernel" : "Fake"; });

// ---- iommufd backend through the context ----

class IommufdBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 3; ++i) fake_.add_vfio_device(cdev(i), 10 + i);
    backend_ = std::move(*IommufdBackend::open(fake_));
  }
  static std::string cdev(int i) { return "/dev/vfio/devices/vfio" + std::to_string(i); }
  DeviceId add(int i) {
    int fd = fake_.open(cdev(i).c_str(), O_RDWR);
    DeviceId d = *ctx_.join(DeviceSpec{"vf" + std::to_string(i), GroupId{10u + i}, backend_});
    EXPECT_TRUE(backend_->bind(d, fd).ok());
    return d;
  }
  HostRange host(uint64_t off, uint64_t len) { return HostRange{Hva(0x7f0000000000 + off), len}; }

  FakeKernel fake_;
  std::shared_ptr<IommufdBackend> backend_;
  IoasidContext ctx_;
};

TEST_F(IommufdBackendTest, DevicesSharingAnAddressSpaceShareOneKernelIoas) {
  IoasId x = *ctx_.create_ioas(IoasKind::kHostManaged);
  ASSERT_TRUE(ctx_.map(x, Iova(0x100000), host(0, 0x4000), Perm::kReadWrite).ok());
  DeviceId a = add(0), b = add(1);
  ASSERT_TRUE(ctx_.attach(a, x).ok());
  ASSERT_TRUE(ctx_.attach(b, x).ok());
  uint32_t k = *backend_->kernel_ioas(x);
  EXPECT_EQ(fake_.ioas_count(), 1u);
  EXPECT_EQ(fake_.attached_pt(cdev(0)), k);
  EXPECT_EQ(fake_.attached_pt(cdev(1)), k);
  ASSERT_EQ(fake_.ioas_mappings(k)->size(), 1u);  // replayed once
  EXPECT_EQ(
      fake_.ioas_mappings(k)->begin()->second.flags,
      uint32_t{IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE});
  ASSERT_TRUE(ctx_.map(x, Iova(0x200000), host(0x4000, 0x1000), Perm::kRead).ok());
  EXPECT_EQ(fake_.ioas_mappings(k)->size(), 2u);
  ASSERT_TRUE(ctx_.unmap(x, Iova(0), UINT64_MAX).ok());
  EXPECT_TRUE(fake_.ioas_mappings(k)->empty());
  auto ranges = backend_->kernel_iova_ranges(x);
  ASSERT_TRUE(ranges.ok());
  EXPECT_EQ(ranges->size(), 1u);
}

TEST_F(IommufdBackendTest, ReplaceMovesTheDeviceAndTheLastDetachDestroysTheKernelIoas) {
  IoasId x = *ctx_.create_ioas(IoasKind::kHostManaged);
  IoasId y = *ctx_.create_ioas(IoasKind::kHostManaged);
  ASSERT_TRUE(ctx_.map(y, Iova(0x100000), host(0, 0x2000), Perm::kRead).ok());
  DeviceId a = add(0);
  ASSERT_TRUE(ctx_.attach(a, x).ok());
  ASSERT_TRUE(ctx_.replace(a, y).ok());
  EXPECT_FALSE(backend_->kernel_ioas(x).has_value());
  uint32_t ky = *backend_->kernel_ioas(y);
  EXPECT_EQ(fake_.attached_pt(cdev(0)), ky);
  EXPECT_EQ(fake_.ioas_mappings(ky)->size(), 1u);
  EXPECT_EQ(fake_.ioas_count(), 1u);
  ASSERT_TRUE(ctx_.detach(a).ok());
  EXPECT_EQ(fake_.ioas_count(), 0u);
  EXPECT_FALSE(fake_.attached_pt(cdev(0)).has_value());
}

TEST_F(IommufdBackendTest, CopyBetweenAddressSpacesUsesIoasCopy) {
  IoasId x = *ctx_.create_ioas(IoasKind::kHostManaged);
  IoasId y = *ctx_.create_ioas(IoasKind::kHostManaged);
  ASSERT_TRUE(ctx_.attach(add(0), x).ok());
  ASSERT_TRUE(ctx_.attach(add(1), y).ok());
  ASSERT_TRUE(ctx_.map(x, Iova(0x100000), host(0, 0x4000), Perm::kRead).ok());
  ASSERT_TRUE(ctx_.copy(x, Iova(0x101000), y, Iova(0x900000), 0x2000).ok());
  EXPECT_EQ(fake_.copies, 1);
  const auto* m = fake_.ioas_mappings(*backend_->kernel_ioas(y));
  ASSERT_EQ(m->size(), 1u);
  EXPECT_EQ(m->begin()->second.va, 0x7f0000001000u);
}

TEST_F(IommufdBackendTest, UnboundDeviceCannotAttach) {
  IoasId x = *ctx_.create_ioas(IoasKind::kHostManaged);
  DeviceId d = *ctx_.join(DeviceSpec{"loose", std::nullopt, backend_});
  auto r = ctx_.attach(d, x);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::kFailedPrecondition);
  EXPECT_EQ(fake_.ioas_count(), 0u);
}

TEST_F(IommufdBackendTest, KernelRefusalSurfacesAsAnErrorAndMapsNothing) {
  IoasId x = *ctx_.create_ioas(IoasKind::kHostManaged);
  ASSERT_TRUE(ctx_.attach(add(0), x).ok());
  // The fake IOMMU stops at 2^48, like the declared aperture; a mapping past it is refused by
  // the context before the kernel sees it.
  auto r = ctx_.map(x, Iova(uint64_t{1} << 48), host(0, 0x1000), Perm::kRead);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(fake_.ioas_mappings(*backend_->kernel_ioas(x))->empty());
  EXPECT_EQ(ctx_.stats().pinned_bytes, 0u);
}

// ---- VFIO type1 backend through the context ----

class VfioType1BackendTest : public ::testing::Test {
 protected:
  VfioType1BackendTest() : backend_(std::make_shared<VfioType1Backend>(fake_)) {
    fake_.add_vfio_device("/dev/vfio/devices/vfio0", 5, "0000:00:04.0");
    fake_.add_vfio_device("/dev/vfio/devices/vfio1", 5, "0000:00:04.1");
    fake_.add_vfio_device("/dev/vfio/devices/vfio2", 6, "0000:00:05.0");
  }
  DeviceId add(const std::string& name, int group) {
    DeviceId d = *ctx_.join(DeviceSpec{name, GroupId{static_cast<uint64_t>(group)}, backend_});
    std::string path = "/dev/vfio/" + std::to_string(group);
    EXPECT_TRUE(backend_->add_device(d, path).ok());
    return d;
  }
  // What VFIO_GROUP_GET_DEVICE_FD answers for `name` of `group`: an fd or -errno.
  int open_device(int group, const char* name) {
    int gfd = *backend_->group_fd("/dev/vfio/" + std::to_string(group));
    return fake_.ioctl(gfd, VFIO_GROUP_GET_DEVICE_FD, const_cast<char*>(name));
  }
  const FakeKernel::Mappings& container(int group) {
    return *fake_.container_mappings(*fake_.group_container(group));
  }

  FakeKernel fake_;
  std::shared_ptr<VfioType1Backend> backend_;
  IoasidContext ctx_;
};

TEST_F(VfioType1BackendTest, AddingADeviceGivesItsGroupAContainerSoTheDeviceCanBeOpened) {
  add("fn0", 5);
  ASSERT_TRUE(fake_.group_container(5).has_value());
  int fd = open_device(5, "0000:00:04.0");
  EXPECT_GE(fd, 0);
  EXPECT_EQ(open_device(5, "0000:00:09.0"), -ENODEV);
  EXPECT_TRUE(container(5).empty());  // nothing reachable before an attach
}

TEST_F(VfioType1BackendTest, GroupMembersShareOneContainerThatMirrorsTheMappings) {
  DeviceId a = add("fn0", 5), b = add("fn1", 5);
  ASSERT_GE(open_device(5, "0000:00:04.0"), 0);
  IoasId x = *ctx_.create_ioas(IoasKind::kHostManaged);
  ASSERT_TRUE(
      ctx_.map(x, Iova(0x100000), HostRange{Hva(0x7f0000000000), 0x2000}, Perm::kRead).ok());
  ASSERT_TRUE(ctx_.attach(a, x).ok());
  ASSERT_TRUE(ctx_.attach(b, x).ok());
  ASSERT_EQ(container(5).size(), 1u);
  EXPECT_EQ(container(5).begin()->second.flags, uint32_t{VFIO_DMA_MAP_FLAG_READ});
  ASSERT_TRUE(ctx_.unmap(x, Iova(0x100000), 0x2000).ok());
  EXPECT_TRUE(container(5).empty());
  ASSERT_TRUE(
      ctx_.map(x, Iova(0x200000), HostRange{Hva(0x7f0000000000), 0x1000}, Perm::kRead).ok());
  ASSERT_TRUE(ctx_.detach(a).ok());
  EXPECT_EQ(container(5).size(), 1u);  // fn1 still uses it
  // The last detach empties the container but keeps the group in it: its device fd is open.
  ASSERT_TRUE(ctx_.detach(b).ok());
  EXPECT_TRUE(fake_.group_container(5).has_value());
  EXPECT_TRUE(container(5).empty());
  EXPECT_FALSE(backend_->group_ioas("/dev/vfio/5").has_value());
}

TEST_F(VfioType1BackendTest, ReplaceRefillsTheContainerWithoutUnsettingTheOpenGroup) {
  DeviceId a = add("nic", 6);
  ASSERT_GE(open_device(6, "0000:00:05.0"), 0);
  IoasId x = *ctx_.create_ioas(IoasKind::kHostManaged);
  IoasId y = *ctx_.create_ioas(IoasKind::kHostManaged);
  ASSERT_TRUE(
      ctx_.map(x, Iova(0x300000), HostRange{Hva(0x7f0000010000), 0x1000}, Perm::kRead).ok());
  ASSERT_TRUE(
      ctx_.map(y, Iova(0x100000), HostRange{Hva(0x7f0000000000), 0x1000}, Perm::kReadWrite).ok());
  int before = *fake_.group_container(6);
  ASSERT_TRUE(ctx_.attach(a, x).ok());
  ASSERT_TRUE(ctx_.replace(a, y).ok());
  EXPECT_EQ(*fake_.group_container(6), before);
  ASSERT_EQ(container(6).size(), 1u);
  EXPECT_EQ(container(6).begin()->first, 0x100000u);
  EXPECT_EQ(backend_->group_ioas("/dev/vfio/6"), y);
}

TEST_F(VfioType1BackendTest, TwoGroupsOnOneAddressSpaceGetTheSameMappingsInTwoContainers) {
  DeviceId a = add("fn0", 5), c = add("other", 6);
  IoasId x = *ctx_.create_ioas(IoasKind::kHostManaged);
  ASSERT_TRUE(
      ctx_.map(x, Iova(0x100000), HostRange{Hva(0x7f0000000000), 0x2000}, Perm::kRead).ok());
  ASSERT_TRUE(ctx_.attach(a, x).ok());
  // The context replays only to a backend new to x; the backend fills the second container.
  ASSERT_TRUE(ctx_.attach(c, x).ok());
  EXPECT_NE(*fake_.group_container(5), *fake_.group_container(6));
  EXPECT_EQ(container(5).size(), 1u);
  ASSERT_EQ(container(6).size(), 1u);
  ASSERT_TRUE(
      ctx_.map(x, Iova(0x400000), HostRange{Hva(0x7f0000000000), 0x1000}, Perm::kRead).ok());
  EXPECT_EQ(container(5).size(), 2u);
  EXPECT_EQ(container(6).size(), 2u);
  EXPECT_EQ(ctx_.stats().pinned_bytes, 0x2000u);  // one pin however many containers
  ASSERT_TRUE(ctx_.detach(a).ok());
  ASSERT_TRUE(ctx_.detach(c).ok());
  // Back on x after everyone left: the context's replay is the only fill, no duplicate.
  ASSERT_TRUE(ctx_.attach(c, x).ok());
  EXPECT_EQ(container(6).size(), 2u);
}

TEST(FakeVfioRules, GetDeviceFdNeedsAnIommuAndUnsetContainerIsBusyWhileADeviceIsOpen) {
  FakeKernel fake;
  fake.add_vfio_device("/dev/vfio/devices/vfio0", 7, "0000:00:06.0");
  int group = fake.open("/dev/vfio/7", O_RDWR);
  int container = fake.open("/dev/vfio/vfio", O_RDWR);
  char name[] = "0000:00:06.0";
  EXPECT_EQ(fake.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, name), -EINVAL);  // no container
  ASSERT_EQ(fake.ioctl(group, VFIO_GROUP_SET_CONTAINER, &container), 0);
  EXPECT_EQ(fake.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, name), -EINVAL);  // no IOMMU yet
  ASSERT_EQ(fake.ioctl(container, VFIO_SET_IOMMU, reinterpret_cast<void*>(VFIO_TYPE1v2_IOMMU)), 0);
  int device = fake.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, name);
  ASSERT_GE(device, 0);
  EXPECT_EQ(fake.ioctl(group, VFIO_GROUP_UNSET_CONTAINER, nullptr), -EBUSY);
  fake.close(device);
  EXPECT_EQ(fake.ioctl(group, VFIO_GROUP_UNSET_CONTAINER, nullptr), 0);
}

TEST(VfioType1Backend, MissingGroupNodeIsAnError) {
  FakeKernel fake;
  VfioType1Backend backend(fake);
  auto r = backend.add_device(DeviceId{1}, "/dev/vfio/99");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().sys_errno(), ENOENT);
}

}  // namespace
}  // namespace ioasis::iommu
