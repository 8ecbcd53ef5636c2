#include "vmm/config/vm_config.h"

#include <gtest/gtest.h>

namespace ioasis {
namespace {

TEST(ParseSize, BinaryUnits) {
  EXPECT_EQ(*parse_size("512M"), 512ull << 20);
  EXPECT_EQ(*parse_size("2G"), 2ull << 30);
  EXPECT_EQ(*parse_size("4096"), 4096u);
  EXPECT_FALSE(parse_size("12X").ok());
  EXPECT_FALSE(parse_size("M").ok());
  EXPECT_FALSE(parse_size("99999999999T").ok());
}

TEST(ParseOptions, NamesTheFlagAndBadKey) {
  auto r = parse_options("--memory", "size=1G,colour=blue", {"size"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("--memory"), std::string::npos);
  EXPECT_NE(r.error().message().find("colour"), std::string::npos);
  EXPECT_FALSE(parse_options("--cpus", "boot=1,boot=2", {"boot"}).ok());
  EXPECT_FALSE(parse_options("--cpus", "boot", {"boot"}).ok());
  auto ok = parse_options("--disk", "path=/a,readonly=on", {"path", "readonly"});
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->at("readonly"), "on");
}

TEST(SerialConfig, ParsesEveryMode) {
  EXPECT_EQ(SerialConfig::parse("stdio")->mode, SerialConfig::Mode::kStdio);
  EXPECT_EQ(SerialConfig::parse("off")->mode, SerialConfig::Mode::kOff);
  auto f = SerialConfig::parse("file=/tmp/x.log");
  EXPECT_EQ(f->mode, SerialConfig::Mode::kFile);
  EXPECT_EQ(f->path, "/tmp/x.log");
  EXPECT_EQ(SerialConfig::parse("socket=/tmp/s")->mode, SerialConfig::Mode::kSocket);
  EXPECT_FALSE(SerialConfig::parse("file=").ok());
  EXPECT_FALSE(SerialConfig::parse("tty").ok());
}

TEST(DiskConfig, ParsesEveryKey) {
  auto d = DiskConfig::parse("path=/tmp/a.img,readonly=on,iommu=on,id=root");
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_EQ(d->path, "/tmp/a.img");
  EXPECT_TRUE(d->readonly);
  EXPECT_TRUE(d->iommu);
  EXPECT_EQ(d->id, "root");
  auto plain = DiskConfig::parse("path=b.img");
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->readonly);
  EXPECT_FALSE(plain->iommu);
}

TEST(DiskConfig, RefusesMissingPathBadSwitchesAndLongIds) {
  EXPECT_FALSE(DiskConfig::parse("readonly=on").ok());
  EXPECT_FALSE(DiskConfig::parse("path=a,readonly=maybe").ok());
  EXPECT_FALSE(DiskConfig::parse("path=a,id=123456789012345678901").ok());
  EXPECT_FALSE(DiskConfig::parse("path=a,cache=none").ok());
}

TEST(VmConfig, AnIommuDiskImpliesTheIommu) {
  VmConfig c;
  c.kernel = "k";
  EXPECT_FALSE(c.wants_iommu());
  c.disks.push_back(*DiskConfig::parse("path=a"));
  EXPECT_FALSE(c.wants_iommu());
  c.disks.push_back(*DiskConfig::parse("path=b,iommu=on"));
  EXPECT_TRUE(c.wants_iommu());
}

TEST(VmConfig, DuplicateDiskIdsAreRefused) {
  VmConfig c;
  c.kernel = "k";
  c.disks.push_back(*DiskConfig::parse("path=a,id=x"));
  c.disks.push_back(*DiskConfig::parse("path=b,id=x"));
  EXPECT_FALSE(c.validate().ok());
}

}  // namespace
}  // namespace ioasis

namespace ioasis {
namespace {

TEST(VmConfigDeviceIds, UnnamedDevicesGoByKindAndPosition) {
  VmConfig c;
  c.disks = {{"/a", false, false, ""}, {"/b", false, false, "boot"}};
  c.user_devices = {{"/s", false, std::nullopt, "", ""}};
  EXPECT_EQ(c.disk_id(0), "disk0");
  EXPECT_EQ(c.disk_id(1), "boot");
  EXPECT_EQ(c.user_device_id(0), "user0");
  EXPECT_TRUE(c.has_device_id("boot"));
  EXPECT_FALSE(c.has_device_id("disk1"));
  // disk2 is free; a named "disk2" would push the next unnamed disk to disk3.
  EXPECT_EQ(c.free_device_id("disk", 2), "disk2");
  c.disks.push_back({"/c", false, false, "disk2"});
  EXPECT_EQ(c.free_device_id("disk", 2), "disk3");
}

TEST(KernelDeviceConfig, ParsesEveryKey) {
  auto d = KernelDeviceConfig::parse("path=/dev/vfio/devices/vfio3,iommu=on,id=nic");
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_EQ(d->path, "/dev/vfio/devices/vfio3");
  EXPECT_TRUE(d->iommu);
  EXPECT_EQ(d->id, "nic");
  auto g = KernelDeviceConfig::parse("path=/sys/bus/pci/devices/0000:01:00.0,ioas=net");
  ASSERT_TRUE(g.ok()) << g.error().message();
  EXPECT_EQ(g->ioas, "net");
  EXPECT_FALSE(g->iommu);
}

TEST(KernelDeviceConfig, RefusesBadKeysEmptyPathAndIommuWithIoas) {
  auto bad_key = KernelDeviceConfig::parse("path=/dev/vfio/devices/vfio0,socket=/x");
  ASSERT_FALSE(bad_key.ok());
  EXPECT_NE(bad_key.error().message().find("--device"), std::string::npos);
  auto empty = KernelDeviceConfig::parse("path=,id=x");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.error().message().find("path= is required"), std::string::npos);
  EXPECT_FALSE(KernelDeviceConfig::parse("iommu=on").ok());
  auto both = KernelDeviceConfig::parse("path=/dev/vfio/devices/vfio0,iommu=on,ioas=a");
  ASSERT_FALSE(both.ok());
  EXPECT_NE(both.error().message().find("exclude each other"), std::string::npos);
  EXPECT_FALSE(KernelDeviceConfig::parse("path=/dev/vfio/devices/vfio0,iommu=maybe").ok());
}

TEST(VmConfigDeviceIds, KernelDevicesGoByVfioAndShareTheIdRules) {
  VmConfig c;
  c.kernel = "/k";
  c.kernel_devices = {{"/dev/vfio/devices/vfio0", false, "", ""},
                      {"/dev/vfio/devices/vfio1", true, "", "nic"}};
  EXPECT_EQ(c.kernel_device_id(0), "vfio0");
  EXPECT_EQ(c.kernel_device_id(1), "nic");
  EXPECT_TRUE(c.has_device_id("vfio0"));
  EXPECT_EQ(c.free_device_id("vfio", 0), "vfio1");
  EXPECT_TRUE(c.wants_iommu());
  c.disks = {{"/a", false, false, "nic"}};
  EXPECT_FALSE(c.validate().ok());  // id=nic twice
  c.disks.clear();
  c.kernel_devices[0].ioas = "missing";
  auto r = c.validate();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("ioas=missing"), std::string::npos);
}

}  // namespace
}  // namespace ioasis
