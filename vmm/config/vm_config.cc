#include "vmm/config/vm_config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>

#include "vmm/x86/cpuid.h"

namespace ioasis {

Result<SerialConfig> SerialConfig::parse(std::string_view spec) {
  SerialConfig c;
  auto path_after = [&](std::string_view prefix) -> std::optional<std::string> {
    if (spec.substr(0, prefix.size()) != prefix) return std::nullopt;
    return std::string(spec.substr(prefix.size()));
  };
  if (spec == "stdio") {
    c.mode = Mode::kStdio;
  } else if (spec == "off") {
    c.mode = Mode::kOff;
  } else if (auto p = path_after("file=")) {
    c.mode = Mode::kFile;
    c.path = *p;
  } else if (auto s = path_after("socket=")) {
    c.mode = Mode::kSocket;
    c.path = *s;
  } else {
    return Error(Errc::kInvalidArgument,
                 fmt::format("--serial '{}': expected stdio, off, file=PATH or socket=PATH", spec));
  }
  if ((c.mode == Mode::kFile || c.mode == Mode::kSocket) && c.path.empty()) {
    return Error(Errc::kInvalidArgument, fmt::format("--serial '{}': the path is empty", spec));
  }
  return c;
}

Result<bool> parse_switch(std::string_view what, std::string_view value) {
  if (value == "on" || value == "true") return true;
  if (value == "off" || value == "false") return false;
  return Error(Errc::kInvalidArgument, fmt::format("{}={}: expected on or off", what, value));
}

Result<DiskConfig> DiskConfig::parse(std::string_view spec) {
  IOASIS_ASSIGN_OR_RETURN(auto opts,
                          parse_options("--disk", spec, {"path", "readonly", "iommu", "id"}));
  DiskConfig d;
  d.path = opts["path"];
  if (d.path.empty()) {
    return Error(Errc::kInvalidArgument, fmt::format("--disk '{}': path= is required", spec));
  }
  if (opts.count("readonly")) {
    IOASIS_ASSIGN_OR_RETURN(d.readonly, parse_switch("--disk readonly", opts["readonly"]));
  }
  if (opts.count("iommu")) {
    IOASIS_ASSIGN_OR_RETURN(d.iommu, parse_switch("--disk iommu", opts["iommu"]));
  }
  d.id = opts.count("id") ? opts["id"] : "";
  // Section 5.2.6 of virtio 1.2: the device ID string is at most 20 bytes.
  if (d.id.size() > 20) {
    return Error(Errc::kInvalidArgument,
                 fmt::format("--disk '{}': id is longer than 20 bytes", spec));
  }
  return d;
}

Result<UserDeviceConfig> UserDeviceConfig::parse(std::string_view spec) {
  IOASIS_ASSIGN_OR_RETURN(
      auto opts, parse_options("--user-device", spec, {"socket", "iommu", "group", "ioas", "id"}));
  UserDeviceConfig d;
  d.socket = opts["socket"];
  if (d.socket.empty()) {
    return Error(Errc::kInvalidArgument,
                 fmt::format("--user-device '{}': socket= is required", spec));
  }
  if (opts.count("iommu")) {
    IOASIS_ASSIGN_OR_RETURN(d.iommu, parse_switch("--user-device iommu", opts["iommu"]));
  }
  if (opts.count("group")) {
    uint64_t g = 0;
    const std::string& text = opts["group"];
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), g);
    if (ec != std::errc() || end != text.data() + text.size()) {
      return Error(Errc::kInvalidArgument,
                   fmt::format("--user-device '{}': group={} is not a number", spec, text));
    }
    d.group = g;
  }
  d.ioas = opts.count("ioas") ? opts["ioas"] : "";
  d.id = opts.count("id") ? opts["id"] : "";
  if (d.iommu && !d.ioas.empty()) {
    return Error(
        Errc::kInvalidArgument,
        fmt::format("--user-device '{}': ioas= and iommu=on exclude each other: behind the "
                    "virtio-iommu the guest chooses the address space",
                    spec));
  }
  return d;
}

Result<KernelDeviceConfig> KernelDeviceConfig::parse(std::string_view spec) {
  IOASIS_ASSIGN_OR_RETURN(auto opts,
                          parse_options("--device", spec, {"path", "iommu", "ioas", "id"}));
  KernelDeviceConfig d;
  d.path = opts["path"];
  if (d.path.empty()) {
    return Error(Errc::kInvalidArgument, fmt::format("--device '{}': path= is required", spec));
  }
  if (opts.count("iommu")) {
    IOASIS_ASSIGN_OR_RETURN(d.iommu, parse_switch("--device iommu", opts["iommu"]));
  }
  d.ioas = opts.count("ioas") ? opts["ioas"] : "";
  d.id = opts.count("id") ? opts["id"] : "";
  if (d.iommu && !d.ioas.empty()) {
    return Error(Errc::kInvalidArgument,
                 fmt::format("--device '{}': ioas= and iommu=on exclude each other: behind the "
                             "virtio-iommu the guest chooses the address space",
                             spec));
  }
  return d;
}

bool VmConfig::wants_iommu() const {
  return iommu ||
         std::any_of(disks.begin(), disks.end(), [](const DiskConfig& d) { return d.iommu; }) ||
         std::any_of(user_devices.begin(), user_devices.end(),
                     [](const UserDeviceConfig& d) { return d.iommu; }) ||
         std::any_of(kernel_devices.begin(), kernel_devices.end(),
                     [](const KernelDeviceConfig& d) { return d.iommu; });
}

std::string VmConfig::disk_id(size_t i) const {
  return disks[i].id.empty() ? fmt::format("disk{}", i) : disks[i].id;
}

std::string VmConfig::user_device_id(size_t i) const {
  return user_devices[i].id.empty() ? fmt::format("user{}", i) : user_devices[i].id;
}

std::string VmConfig::kernel_device_id(size_t i) const {
  return kernel_devices[i].id.empty() ? fmt::format("vfio{}", i) : kernel_devices[i].id;
}

bool VmConfig::has_device_id(std::string_view id) const {
  for (size_t i = 0; i < disks.size(); ++i) {
    if (disk_id(i) == id) return true;
  }
  for (size_t i = 0; i < user_devices.size(); ++i) {
    if (user_device_id(i) == id) return true;
  }
  for (size_t i = 0; i < kernel_devices.size(); ++i) {
    if (kernel_device_id(i) == id) return true;
  }
  return false;
}

std::string VmConfig::free_device_id(std::string_view prefix, size_t from) const {
  for (size_t n = from;; ++n) {
    std::string id = fmt::format("{}{}", prefix, n);
    if (!has_device_id(id)) return id;
  }
}

Result<void> VmConfig::validate() const {
  if (kernel.empty()) return Error(Errc::kInvalidArgument, "--kernel is required");
  if (cpus == 0 || cpus > 254) {
    return Error(Errc::kInvalidArgument, fmt::format("--cpus boot={}: must be 1 to 254", cpus));
  }
  // Feature names are checked now, not when the VM boots; whether KVM has them is a boot matter.
  IOASIS_TRY(x86::CpuPolicy::parse(cpu_features));
  std::vector<std::string> ids;
  for (const DiskConfig& d : disks) ids.push_back(d.id);
  for (const UserDeviceConfig& d : user_devices) ids.push_back(d.id);
  for (const KernelDeviceConfig& d : kernel_devices) ids.push_back(d.id);
  for (size_t i = 0; i < ids.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (!ids[i].empty() && ids[i] == ids[j]) {
        return Error(Errc::kInvalidArgument, fmt::format("device id={} is used twice", ids[i]));
      }
    }
  }
  for (const UserDeviceConfig& d : user_devices) {
    if (!d.ioas.empty() &&
        std::find(address_spaces.begin(), address_spaces.end(), d.ioas) == address_spaces.end()) {
      return Error(Errc::kInvalidArgument,
                   fmt::format("--user-device socket={}: ioas={} names no --ioas id={}", d.socket,
                               d.ioas, d.ioas));
    }
  }
  for (const KernelDeviceConfig& d : kernel_devices) {
    if (!d.ioas.empty() &&
        std::find(address_spaces.begin(), address_spaces.end(), d.ioas) == address_spaces.end()) {
      return Error(
          Errc::kInvalidArgument,
          fmt::format("--device path={}: ioas={} names no --ioas id={}", d.path, d.ioas, d.ioas));
    }
  }
  for (size_t i = 0; i < address_spaces.size(); ++i) {
    if (address_spaces[i].empty()) return Error(Errc::kInvalidArgument, "--ioas id= is empty");
    if (std::find(address_spaces.begin(), address_spaces.begin() + static_cast<long>(i),
                  address_spaces[i]) != address_spaces.begin() + static_cast<long>(i)) {
      return Error(Errc::kInvalidArgument,
                   fmt::format("--ioas id={} is given twice", address_spaces[i]));
    }
  }
  return {};
}

Result<uint64_t> parse_size(std::string_view text) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end == text.data()) {
    return Error(Errc::kInvalidArgument, fmt::format("'{}' is not a size (e.g. 512M, 2G)", text));
  }
  std::string_view unit(end, text.data() + text.size() - end);
  unsigned shift = 0;
  if (unit == "K" || unit == "k")
    shift = 10;
  else if (unit == "M" || unit == "m")
    shift = 20;
  else if (unit == "G" || unit == "g")
    shift = 30;
  else if (unit == "T" || unit == "t")
    shift = 40;
  else if (!unit.empty()) {
    return Error(Errc::kInvalidArgument,
                 fmt::format("'{}': unknown size unit '{}' (K, M, G, T)", text, unit));
  }
  if (shift && value > (UINT64_MAX >> shift)) {
    return Error(Errc::kInvalidArgument, fmt::format("'{}' is too large", text));
  }
  return value << shift;
}

Result<std::map<std::string, std::string>> parse_options(std::string_view flag,
                                                         std::string_view text,
                                                         const std::vector<std::string>& allowed) {
  std::map<std::string, std::string> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    std::string_view item =
        text.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    pos = comma == std::string_view::npos ? text.size() + 1 : comma + 1;
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return Error(Errc::kInvalidArgument,
                   fmt::format("{} '{}': '{}' is not key=value", flag, text, item));
    }
    std::string key(item.substr(0, eq));
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return Error(Errc::kInvalidArgument, fmt::format("{} '{}': unknown key '{}' (expected {})",
                                                       flag, text, key, fmt::join(allowed, ", ")));
    }
    if (!out.emplace(key, std::string(item.substr(eq + 1))).second) {
      return Error(Errc::kInvalidArgument,
                   fmt::format("{} '{}': '{}' given twice", flag, text, key));
    }
  }
  return out;
}

}  // namespace ioasis
