// The IOASID manager driving vfio-user servers through VfioUserDmaBackend: shared and separate
// address spaces, detach, unmap, the isolation-group rule and a dead server among live ones.
#include "devices/vfio/vfio_user_dma_backend.h"

#include <gtest/gtest.h>

#include "devices/vfio/vfio_user_test_util.h"
#include "iommu/ioasid_context.h"

namespace ioasis::devices::vfio_user {
namespace {

using namespace testing;
using namespace std::chrono_literals;
using iommu::DeviceId;
using iommu::IoasId;
using iommu::Perm;

constexpr uint64_t kMiB = 1 << 20;

struct Function {
  std::unique_ptr<VfioUserServer> server;
  std::shared_ptr<VfioUserClient> client;
  DeviceId id;
};

class VfioUserDmaBackendTest : public ::testing::Test {
 protected:
  Function add(const std::string& name, std::optional<uint64_t> group = std::nullopt) {
    ServerOptions options;
    options.socket_path = temp_socket(name);
    options.device.isolation_group = group;
    Function f;
    f.server = std::move(*VfioUserServer::create(options));
    f.server->start();
    f.client = std::move(*VfioUserClient::connect(options.socket_path));
    auto declared = *f.client->isolation_group();
    std::optional<iommu::GroupId> gid;
    if (declared) gid = iommu::GroupId{*declared};
    f.id = *ctx_.join(iommu::DeviceSpec{name, gid, backend_});
    backend_->add_device(f.id, f.client);
    return f;
  }
  IoasId create() { return *ctx_.create_ioas(iommu::IoasKind::kGuestDomain); }
  // Copies `length` bytes inside the function's address space and returns the final status.
  uint32_t copy(Function& f, uint64_t src, uint64_t dst, uint32_t length) {
    EXPECT_TRUE(start_copy(*f.client, src, dst, length).ok());
    auto s = wait_idle(*f.client);
    return s.ok() ? *s : 0xffffffff;
  }

  Memfd ram_ = Memfd::create(8 * kMiB);
  std::shared_ptr<VfioUserDmaBackend> backend_ = std::make_shared<VfioUserDmaBackend>();
  iommu::IoasidContext ctx_;
};

const uint32_t kDone = status_of(DmaState::kDone);
const uint32_t kSrcFault = status_of(DmaState::kError, DmaError::kSrcUnmapped);

TEST_F(VfioUserDmaBackendTest, DevicesInOneAddressSpaceShareItsMappings) {
  Function a = add("shared-a");
  Function b = add("shared-b");
  IoasId x = create();
  ASSERT_TRUE(ctx_.attach(a.id, x).ok());
  ASSERT_TRUE(ctx_.map(x, Iova(0x100000), ram_.range(0, kMiB), Perm::kReadWrite).ok());
  // b arrives after the mapping: the backend replays it to b's server.
  ASSERT_TRUE(ctx_.attach(b.id, x).ok());
  std::memcpy(ram_.at(0), "shared buffer", 14);
  EXPECT_EQ(copy(a, 0x100000, 0x101000, 14), kDone);
  EXPECT_EQ(copy(b, 0x101000, 0x102000, 14), kDone);
  EXPECT_STREQ(reinterpret_cast<char*>(ram_.at(0x2000)), "shared buffer");
  EXPECT_EQ(backend_->mirrored(x), 1u);
}

TEST_F(VfioUserDmaBackendTest, SeparateAddressSpacesSeeOnlyTheirOwnMappings) {
  Function a = add("iso-a");
  Function b = add("iso-b");
  IoasId x = create();
  IoasId y = create();
  ASSERT_TRUE(ctx_.attach(a.id, x).ok());
  ASSERT_TRUE(ctx_.attach(b.id, y).ok());
  ASSERT_TRUE(ctx_.map(x, Iova(0x100000), ram_.range(0, kMiB), Perm::kReadWrite).ok());
  ASSERT_TRUE(ctx_.map(y, Iova(0x300000), ram_.range(2 * kMiB, kMiB), Perm::kReadWrite).ok());
  EXPECT_EQ(copy(a, 0x100000, 0x100100, 16), kDone);
  EXPECT_EQ(copy(b, 0x300000, 0x300100, 16), kDone);
  EXPECT_EQ(copy(a, 0x300000, 0x100100, 16), kSrcFault);
  EXPECT_EQ(copy(b, 0x100000, 0x300100, 16), kSrcFault);
}

TEST_F(VfioUserDmaBackendTest, MovingADeviceTakesItsMappingsAway) {
  Function a = add("move-a");
  IoasId x = create();
  IoasId y = create();
  ASSERT_TRUE(ctx_.attach(a.id, x).ok());
  ASSERT_TRUE(ctx_.map(x, Iova(0x100000), ram_.range(0, kMiB), Perm::kReadWrite).ok());
  ASSERT_TRUE(ctx_.map(y, Iova(0x500000), ram_.range(kMiB, kMiB), Perm::kReadWrite).ok());
  ASSERT_TRUE(ctx_.replace(a.id, y).ok());
  EXPECT_EQ(copy(a, 0x100000, 0x100100, 16), kSrcFault);
  EXPECT_EQ(copy(a, 0x500000, 0x500100, 16), kDone);
}

TEST_F(VfioUserDmaBackendTest, DetachStopsFurtherDma) {
  Function a = add("detach-a");
  IoasId x = create();
  ASSERT_TRUE(ctx_.attach(a.id, x).ok());
  ASSERT_TRUE(ctx_.map(x, Iova(0x100000), ram_.range(0, kMiB), Perm::kReadWrite).ok());
  EXPECT_EQ(copy(a, 0x100000, 0x100100, 16), kDone);
  ASSERT_TRUE(ctx_.detach(a.id).ok());
  EXPECT_EQ(copy(a, 0x100000, 0x100100, 16), kSrcFault);
  EXPECT_EQ(backend_->mirrored(x), 0u);
}

TEST_F(VfioUserDmaBackendTest, UnmapHasReachedTheServerWhenItReturns) {
  Function a = add("unmap-a");
  IoasId x = create();
  ASSERT_TRUE(ctx_.attach(a.id, x).ok());
  ASSERT_TRUE(ctx_.map(x, Iova(0x100000), ram_.range(0, kMiB), Perm::kReadWrite).ok());
  ASSERT_TRUE(ctx_.map(x, Iova(0x200000), ram_.range(kMiB, kMiB), Perm::kReadWrite).ok());
  ASSERT_TRUE(ctx_.unmap(x, Iova(0x100000), kMiB).ok());
  EXPECT_EQ(copy(a, 0x100000, 0x200000, 16), kSrcFault);
  EXPECT_EQ(copy(a, 0x200000, 0x200100, 16), kDone);
  ASSERT_TRUE(ctx_.unmap(x, Iova(0), UINT64_MAX).ok());
  EXPECT_EQ(copy(a, 0x200000, 0x200100, 16), kSrcFault);
}

TEST_F(VfioUserDmaBackendTest, SecondFunctionOfAGroupMustShareTheAddressSpace) {
  Function fn0 = add("group-fn0", 9);
  Function fn1 = add("group-fn1", 9);
  IoasId x = create();
  IoasId y = create();
  ASSERT_TRUE(ctx_.attach(fn0.id, x).ok());
  auto r = ctx_.attach(fn1.id, y);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::kPermissionDenied);
  EXPECT_TRUE(ctx_.attach(fn1.id, x).ok());
}

TEST_F(VfioUserDmaBackendTest, DeadServerDoesNotStopTheOthersInItsAddressSpace) {
  Function a = add("dead-a");
  Function b = add("dead-b");
  IoasId x = create();
  ASSERT_TRUE(ctx_.attach(a.id, x).ok());
  ASSERT_TRUE(ctx_.attach(b.id, x).ok());
  a.server.reset();
  for (int i = 0; i < 200 && !a.client->failed(); ++i) std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(a.client->failed());
  ASSERT_TRUE(ctx_.map(x, Iova(0x100000), ram_.range(0, kMiB), Perm::kReadWrite).ok());
  EXPECT_EQ(copy(b, 0x100000, 0x100100, 16), kDone);
  EXPECT_TRUE(ctx_.unmap(x, Iova(0x100000), kMiB).ok());
}

}  // namespace
}  // namespace ioasis::devices::vfio_user
