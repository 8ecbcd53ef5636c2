// Everything needed to build a VM, as plain data. The CLI and the gRPC API both produce one;
// parsing of the cloud-hypervisor style "key=value,key=value" option strings lives here too so
// both front ends report the same errors.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace ioasis {

struct SerialConfig {
  enum class Mode { kStdio, kFile, kSocket, kOff };
  Mode mode = Mode::kStdio;
  std::string path;  // kFile, kSocket

  // "stdio", "off", "file=PATH", "socket=PATH".
  static Result<SerialConfig> parse(std::string_view spec);
};

// One virtio-blk disk: "path=PATH[,readonly=on][,iommu=on][,id=ID]".
struct DiskConfig {
  std::string path;
  bool readonly = false;
  bool iommu = false;  // behind the virtio-iommu
  std::string id;      // what the guest reads with VIRTIO_BLK_T_GET_ID; at most 20 bytes

  static Result<DiskConfig> parse(std::string_view spec);
};

// A PCI function served by a vfio-user server: --user-device
// socket=PATH[,iommu=on][,group=G][,ioas=NAME][,id=ID].
struct UserDeviceConfig {
  std::string socket;
  bool iommu = false;
  // Isolation group; when absent, the group the server declares (or a group of its own).
  std::optional<uint64_t> group;
  std::string ioas;  // host-managed address space to join instead of guest-ram (not with iommu)
  std::string id;

  static Result<UserDeviceConfig> parse(std::string_view spec);
};

// A PCI function the host kernel's VFIO driver holds: --device
// path=SYSFS_OR_CDEV[,iommu=on][,ioas=NAME][,id=ID]. The path is a VFIO device cdev
// (/dev/vfio/devices/vfioN, used through iommufd) or a PCI device's sysfs directory
// (/sys/bus/pci/devices/DDDD:BB:DD.F, used through its VFIO group and a type1 container).
struct KernelDeviceConfig {
  std::string path;
  bool iommu = false;
  std::string ioas;  // host-managed address space to join instead of guest-ram (not with iommu)
  std::string id;

  static Result<KernelDeviceConfig> parse(std::string_view spec);
};

struct VmConfig {
  std::string kernel;
  std::optional<std::string> initramfs;
  std::string cmdline;
  uint64_t memory_size = 512ull << 20;
  uint32_t cpus = 1;
  std::string cpu_features = "host";
  SerialConfig serial;
  std::vector<DiskConfig> disks;
  std::vector<UserDeviceConfig> user_devices;
  std::vector<KernelDeviceConfig> kernel_devices;
  // Host-managed address spaces created at boot (--ioas id=NAME), for devices' ioas=NAME.
  std::vector<std::string> address_spaces;
  // A virtio-iommu is present: asked for with --iommu on, or implied by any iommu=on device.
  bool iommu = false;

  bool wants_iommu() const;

  // The id a device goes by in logs and the API: its id=, or "disk<i>" / "user<i>" / "vfio<i>"
  // by position.
  std::string disk_id(size_t i) const;
  std::string user_device_id(size_t i) const;
  std::string kernel_device_id(size_t i) const;
  bool has_device_id(std::string_view id) const;
  // "<prefix><n>" for the smallest n >= from that no device goes by, for a device added unnamed.
  std::string free_device_id(std::string_view prefix, size_t from) const;

  // Cross-field checks the individual parsers cannot make.
  Result<void> validate() const;
};

// "on" / "off" (and "true" / "false") for option values; `what` names the option in errors.
Result<bool> parse_switch(std::string_view what, std::string_view value);

// "512M", "2G", "4096", "1T" (binary units) -> bytes.
Result<uint64_t> parse_size(std::string_view text);

// Parses "a=1,b=two" into keys and values, refusing keys outside `allowed` and duplicates. `flag`
// names the option in errors ("--memory").
Result<std::map<std::string, std::string>> parse_options(std::string_view flag,
                                                         std::string_view text,
                                                         const std::vector<std::string>& allowed);

}  // namespace ioasis
