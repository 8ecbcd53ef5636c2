#include "devices/virtio/endpoints.h"

#include <gtest/gtest.h>

namespace ioasis::devices::virtio {
namespace {

TEST(IommuEndpointsTest, FindsRegisteredEndpointsAndRefusesDuplicates) {
  IommuEndpoints e;
  EXPECT_TRUE(e.empty());
  ASSERT_TRUE(e.add(0x10, iommu::DeviceId{3}).ok());
  ASSERT_TRUE(e.add(0x08, iommu::DeviceId{4}).ok());
  EXPECT_EQ(e.add(0x10, iommu::DeviceId{5}).error().code(), Errc::kAlreadyExists);
  EXPECT_EQ(e.find(0x10), iommu::DeviceId{3});
  EXPECT_FALSE(e.find(0x18).has_value());
  EXPECT_EQ(e.endpoints(), (std::vector<uint32_t>{0x08, 0x10}));
}

TEST(IommuEndpointsTest, FaultsReachTheInstalledHandler) {
  IommuEndpoints e;
  iommu::DmaFault f{Iova(0x1000), iommu::Access::kWrite, iommu::FaultReason::kPermission};
  e.report_fault(0x08, f);  // no handler yet: logged, not lost in a crash
  std::vector<std::pair<uint32_t, uint64_t>> seen;
  e.set_fault_handler(
      [&](uint32_t ep, const iommu::DmaFault& fault) { seen.emplace_back(ep, fault.iova.value); });
  e.report_fault(0x08, f);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], std::make_pair(uint32_t{0x08}, uint64_t{0x1000}));
}

}  // namespace
}  // namespace ioasis::devices::virtio
