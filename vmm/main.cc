// ioasis: boots one VM from the command line, in the style of cloud-hypervisor.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "api/server.h"
#include "base/log.h"
#include "vmm/config/vm_config.h"
#include "vmm/vmm.h"

namespace {

constexpr int kExitUsage = 2;
constexpr int kExitVmmError = 1;

struct CliArgs {
  std::string kernel, initramfs, cmdline, memory = "size=512M", cpus = "boot=1", serial = "stdio";
  std::string cpu_features = "host", log_level = "info", api_socket, iommu = "off";
  std::vector<std::string> disks, user_devices, kernel_devices, address_spaces;
};

ioasis::Result<ioasis::VmConfig> to_config(const CliArgs& a) {
  using ioasis::Errc;
  using ioasis::Error;
  ioasis::VmConfig c;
  c.kernel = a.kernel;
  if (!a.initramfs.empty()) c.initramfs = a.initramfs;
  c.cmdline = a.cmdline;
  IOASIS_ASSIGN_OR_RETURN(auto mem, ioasis::parse_options("--memory", a.memory, {"size"}));
  if (mem.count("size")) {
    auto size = ioasis::parse_size(mem["size"]);
    if (!size)
      return Error(Errc::kInvalidArgument,
                   "--memory size=" + mem["size"] + ": " + size.error().message());
    c.memory_size = *size;
  }
  IOASIS_ASSIGN_OR_RETURN(auto cpus, ioasis::parse_options("--cpus", a.cpus, {"boot"}));
  if (cpus.count("boot")) {
    char* end = nullptr;
    unsigned long n = std::strtoul(cpus["boot"].c_str(), &end, 10);
    if (cpus["boot"].empty() || *end || n == 0 || n > 254) {
      return Error(Errc::kInvalidArgument, "--cpus boot=" + cpus["boot"] + ": expected 1 to 254");
    }
    c.cpus = static_cast<uint32_t>(n);
  }
  IOASIS_ASSIGN_OR_RETURN(c.serial, ioasis::SerialConfig::parse(a.serial));
  c.cpu_features = a.cpu_features;
  for (const std::string& spec : a.user_devices) {
    IOASIS_ASSIGN_OR_RETURN(ioasis::UserDeviceConfig dev, ioasis::UserDeviceConfig::parse(spec));
    c.user_devices.push_back(std::move(dev));
  }
  for (const std::string& spec : a.kernel_devices) {
    IOASIS_ASSIGN_OR_RETURN(ioasis::KernelDeviceConfig dev,
                            ioasis::KernelDeviceConfig::parse(spec));
    c.kernel_devices.push_back(std::move(dev));
  }
  for (const std::string& spec : a.address_spaces) {
    IOASIS_ASSIGN_OR_RETURN(auto opts, ioasis::parse_options("--ioas", spec, {"id"}));
    c.address_spaces.push_back(opts["id"]);
  }
  for (const std::string& spec : a.disks) {
    IOASIS_ASSIGN_OR_RETURN(ioasis::DiskConfig disk, ioasis::DiskConfig::parse(spec));
    c.disks.push_back(std::move(disk));
  }
  IOASIS_ASSIGN_OR_RETURN(c.iommu, ioasis::parse_switch("--iommu", a.iommu));
  IOASIS_TRY(c.validate());
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ioasis: a KVM virtual machine monitor built around I/O address spaces"};
  app.set_version_flag("--version", std::string("ioasis ") + IOASIS_VERSION);
  CliArgs a;
  app.add_option("--kernel", a.kernel,
                 "Kernel to boot: ELF with a PVH note, ELF vmlinux or bzImage");
  app.add_option("--api-socket", a.api_socket,
                 "Serve the gRPC API on this UNIX socket; without --kernel, wait for Create/Boot");
  app.add_option("--initramfs", a.initramfs, "Initial ramdisk");
  app.add_option("--cmdline", a.cmdline, "Kernel command line");
  app.add_option("--memory", a.memory, "Guest RAM: size=<bytes>[K|M|G]")->capture_default_str();
  app.add_option("--cpus", a.cpus, "vCPUs: boot=<n>")->capture_default_str();
  app.add_option("--serial", a.serial, "Console: stdio | file=PATH | socket=PATH | off")
      ->capture_default_str();
  app.add_option("--cpu-features", a.cpu_features,
                 "CPUID policy and changes: [host|baseline][,+feature|,-feature...]")
      ->capture_default_str();
  app.add_option("--user-device", a.user_devices,
                 "vfio-user device: socket=PATH[,iommu=on][,group=G][,ioas=NAME][,id=ID] "
                 "(repeatable)");
  app.add_option("--device", a.kernel_devices,
                 "Kernel VFIO device: path=/dev/vfio/devices/vfioN|/sys/bus/pci/devices/BDF"
                 "[,iommu=on][,ioas=NAME][,id=ID] (repeatable)");
  app.add_option("--ioas", a.address_spaces,
                 "Host-managed address space for devices' ioas=NAME: id=NAME (repeatable)");
  app.add_option("--disk", a.disks,
                 "virtio-blk disk: path=PATH[,readonly=on][,iommu=on][,id=ID] (repeatable)");
  app.add_option("--iommu", a.iommu, "virtio-iommu: on | off (on when any device has iommu=on)")
      ->capture_default_str();
  app.add_option("--log-level", a.log_level, "trace | debug | info | warn | error | off")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kExitUsage;
  }

  if (auto r = ioasis::log::init(a.log_level); !r) {
    fmt::print(stderr, "ioasis: --log-level: {}\n", r.error().message());
    return kExitUsage;
  }
  if (a.kernel.empty() && a.api_socket.empty()) {
    fmt::print(stderr, "ioasis: --kernel or --api-socket is required (see --help)\n");
    return kExitUsage;
  }
  std::optional<ioasis::VmConfig> config;
  if (!a.kernel.empty()) {
    auto parsed = to_config(a);
    if (!parsed) {
      fmt::print(stderr, "ioasis: {}\n", parsed.error().message());
      return kExitUsage;
    }
    config = std::move(*parsed);
  }

  // With an API socket the VMM outlives its VM, waiting for the next request.
  ioasis::Vmm vmm(/*exit_with_vm=*/a.api_socket.empty());
  std::unique_ptr<ioasis::api::ApiServer> api;
  if (!a.api_socket.empty()) {
    auto server = ioasis::api::ApiServer::start(a.api_socket, vmm);
    if (!server) {
      spdlog::error("{}", server.error().message());
      return kExitVmmError;
    }
    api = std::move(*server);
  }
  if (config) {
    if (auto r = vmm.create(*config); !r) {
      spdlog::error("{}", r.error().message());
      return kExitVmmError;
    }
    if (auto r = vmm.boot(); !r) {
      spdlog::error("{}", r.error().message());
      return kExitVmmError;
    }
  }
  int status = vmm.run();
  api.reset();  // stop serving before the VMM goes away
  return status;
}
