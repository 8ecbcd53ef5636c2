// ioasisctl: the command-line client of the ioasis API.
//
// Exit status: 0 success, 1 the API refused the request (its status and message are printed),
// 2 a usage error, 3 no VMM answers on the socket.
#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "api/client.h"
#include "ioasis/v1/address_spaces.grpc.pb.h"
#include "ioasis/v1/devices.grpc.pb.h"
#include "ioasis/v1/vm.grpc.pb.h"
#include "vmm/config/vm_config.h"

namespace v1 = ioasis::v1;

namespace {

constexpr int kExitApiError = 1;
constexpr int kExitUsage = 2;
constexpr int kExitConnection = 3;

struct Options {
  std::string socket;
  bool json = false;
  int timeout_s = 30;
};

std::string to_json(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = true;
  opts.always_print_primitive_fields = true;
  opts.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, opts);
  return out;
}

void print_table(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size());
  for (size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], r[i].size());
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s;
    for (size_t i = 0; i < cells.size(); ++i) s += fmt::format("{:<{}}  ", cells[i], width[i]);
    while (!s.empty() && s.back() == ' ') s.pop_back();
    fmt::print("{}\n", s);
  };
  line(header);
  for (const auto& r : rows) line(r);
}

std::string state_name(v1::VmState s) {
  std::string n = v1::VmState_Name(s);
  return n.rfind("VM_STATE_", 0) == 0 ? n.substr(9) : n;
}

std::string kind_name(v1::AddressSpaceKind k) {
  switch (k) {
    case v1::ADDRESS_SPACE_KIND_GUEST_RAM:
      return "guest-ram";
    case v1::ADDRESS_SPACE_KIND_HOST_MANAGED:
      return "host-managed";
    case v1::ADDRESS_SPACE_KIND_GUEST_DOMAIN:
      return "guest-domain";
    default:
      return "?";
  }
}

class Ctl {
 public:
  explicit Ctl(const Options& o) : o_(o), channel_(ioasis::api::connect_unix(o.socket)) {}

  // Runs one RPC: connection check, deadline, error reporting, then `print` on success.
  template <typename Stub, typename Req, typename Resp>
  int call(grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*), const Req& req,
           std::function<void(const Resp&)> print = nullptr) {
    if (!channel_->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(3))) {
      fmt::print(stderr, "ioasisctl: no VMM answers on {}\n", o_.socket);
      return kExitConnection;
    }
    Stub stub(channel_);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(o_.timeout_s));
    Resp resp;
    grpc::Status st = (stub.*method)(&ctx, req, &resp);
    if (!st.ok()) {
      fmt::print(stderr, "ioasisctl: {}: {}\n", status_name(st.error_code()), st.error_message());
      return st.error_code() == grpc::StatusCode::UNAVAILABLE ? kExitConnection : kExitApiError;
    }
    if (o_.json) {
      fmt::print("{}", to_json(resp));
    } else if (print) {
      print(resp);
    }
    return 0;
  }

  int events() {
    if (!channel_->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(3))) {
      fmt::print(stderr, "ioasisctl: no VMM answers on {}\n", o_.socket);
      return kExitConnection;
    }
    v1::Vm::Stub stub(channel_);
    grpc::ClientContext ctx;
    auto reader = stub.Events(&ctx, v1::EventsRequest());
    v1::Event e;
    while (reader->Read(&e)) {
      if (o_.json) {
        std::string line;
        (void)google::protobuf::util::MessageToJsonString(e, &line);
        fmt::print("{}\n", line);
      } else {
        fmt::print("{} {} {} {}\n", v1::Event::Kind_Name(e.kind()), state_name(e.state()),
                   e.device(), e.message());
      }
      std::fflush(stdout);
    }
    grpc::Status st = reader->Finish();
    if (!st.ok() && st.error_code() != grpc::StatusCode::CANCELLED) {
      fmt::print(stderr, "ioasisctl: {}\n", st.error_message());
      return kExitConnection;
    }
    return 0;
  }

  static std::string status_name(grpc::StatusCode c) {
    switch (c) {
      case grpc::StatusCode::INVALID_ARGUMENT:
        return "INVALID_ARGUMENT";
      case grpc::StatusCode::NOT_FOUND:
        return "NOT_FOUND";
      case grpc::StatusCode::ALREADY_EXISTS:
        return "ALREADY_EXISTS";
      case grpc::StatusCode::FAILED_PRECONDITION:
        return "FAILED_PRECONDITION";
      case grpc::StatusCode::RESOURCE_EXHAUSTED:
        return "RESOURCE_EXHAUSTED";
      case grpc::StatusCode::UNIMPLEMENTED:
        return "UNIMPLEMENTED";
      case grpc::StatusCode::UNAVAILABLE:
        return "UNAVAILABLE";
      case grpc::StatusCode::DEADLINE_EXCEEDED:
        return "DEADLINE_EXCEEDED";
      case grpc::StatusCode::PERMISSION_DENIED:
        return "PERMISSION_DENIED";
      default:
        return fmt::format("status {}", static_cast<int>(c));
    }
  }

 private:
  const Options& o_;
  std::shared_ptr<grpc::Channel> channel_;
};

void print_devices(const google::protobuf::RepeatedPtrField<v1::DeviceInfo>& devices) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& d : devices) {
    rows.push_back({d.id(), d.kind(), d.bdf().empty() ? "-" : d.bdf(), d.iommu() ? "yes" : "no",
                    d.failure().empty() ? "ok" : "FAILED: " + d.failure()});
  }
  print_table({"ID", "KIND", "BDF", "IOMMU", "STATUS"}, rows);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ioasisctl: control an ioasis VMM through its API socket"};
  app.require_subcommand(1);
  Options o;
  app.add_option("--api-socket", o.socket, "The VMM's API socket")->required();
  app.add_flag("--json", o.json, "Print responses as JSON");
  app.add_option("--timeout", o.timeout_s, "Seconds to wait for a reply")->capture_default_str();

  std::function<int(Ctl&)> action;
  auto on = [&](CLI::App* sub, std::function<int(Ctl&)> fn) {
    sub->callback([&action, fn] { action = fn; });
  };

  on(app.add_subcommand("ping", "Check the VMM answers; print its version"), [](Ctl& c) {
    return c.call(&v1::Vm::Stub::Ping, v1::PingRequest(),
                  std::function<void(const v1::PingResponse&)>([](const v1::PingResponse& r) {
                    fmt::print("ioasis {} (pid {})\n", r.version(), r.pid());
                  }));
  });

  // create: the same flags as the ioasis command line.
  auto* create = app.add_subcommand("create", "Define the VM");
  std::string kernel, initramfs, cmdline, memory = "512M", serial = "stdio", cpu_features;
  uint32_t cpus = 1;
  bool iommu = false;
  create->add_option("--kernel", kernel)->required();
  create->add_option("--initramfs", initramfs);
  create->add_option("--cmdline", cmdline);
  create->add_option("--memory", memory, "Size, e.g. 512M")->capture_default_str();
  create->add_option("--cpus", cpus)->capture_default_str();
  create->add_option("--serial", serial, "stdio | off | file=PATH | socket=PATH")
      ->capture_default_str();
  create->add_option("--cpu-features", cpu_features);
  create->add_flag("--iommu", iommu, "Add a virtio-iommu");
  on(create, [&](Ctl& c) -> int {
    v1::CreateRequest req;
    auto* cfg = req.mutable_config();
    cfg->set_kernel(kernel);
    cfg->set_initramfs(initramfs);
    cfg->set_cmdline(cmdline);
    auto size = ioasis::parse_size(memory);
    if (!size) {
      fmt::print(stderr, "ioasisctl: --memory: {}\n", size.error().message());
      return kExitUsage;
    }
    cfg->set_memory_bytes(*size);
    cfg->set_cpus(cpus);
    cfg->set_cpu_features(cpu_features);
    cfg->set_iommu(iommu);
    auto sc = ioasis::SerialConfig::parse(serial);
    if (!sc) {
      fmt::print(stderr, "ioasisctl: {}\n", sc.error().message());
      return kExitUsage;
    }
    static const v1::SerialConfig::Mode kModes[] = {
        v1::SerialConfig::MODE_STDIO, v1::SerialConfig::MODE_FILE, v1::SerialConfig::MODE_SOCKET,
        v1::SerialConfig::MODE_OFF};
    cfg->mutable_serial()->set_mode(kModes[static_cast<int>(sc->mode)]);
    cfg->mutable_serial()->set_path(sc->path);
    return c.call(&v1::Vm::Stub::Create, req);
  });

  on(app.add_subcommand("boot", "Boot the VM"),
     [](Ctl& c) { return c.call(&v1::Vm::Stub::Boot, v1::BootRequest()); });
  on(app.add_subcommand("pause", "Pause the vCPUs"),
     [](Ctl& c) { return c.call(&v1::Vm::Stub::Pause, v1::PauseRequest()); });
  on(app.add_subcommand("resume", "Resume the vCPUs"),
     [](Ctl& c) { return c.call(&v1::Vm::Stub::Resume, v1::ResumeRequest()); });
  on(app.add_subcommand("reboot", "Reboot the VM"),
     [](Ctl& c) { return c.call(&v1::Vm::Stub::Reboot, v1::RebootRequest()); });
  on(app.add_subcommand("delete", "Forget a stopped VM"),
     [](Ctl& c) { return c.call(&v1::Vm::Stub::Delete, v1::DeleteRequest()); });
  auto* shutdown = app.add_subcommand("shutdown", "Stop the VM");
  uint32_t grace_ms = 0;
  shutdown->add_option("--grace-ms", grace_ms, "Time the guest gets to power off by itself");
  on(shutdown, [&](Ctl& c) {
    v1::ShutdownRequest req;
    req.set_grace_period_ms(grace_ms);
    return c.call(&v1::Vm::Stub::Shutdown, req);
  });
  on(app.add_subcommand("info", "Show the VM"), [](Ctl& c) {
    return c.call(&v1::Vm::Stub::Info, v1::InfoRequest(),
                  std::function<void(const v1::InfoResponse&)>([](const v1::InfoResponse& r) {
                    fmt::print("state:   {}\n", state_name(r.state()));
                    if (r.has_config()) {
                      fmt::print("kernel:  {}\ncmdline: {}\nvcpus:   {}\nmemory:  {} MiB\n",
                                 r.config().kernel(), r.config().cmdline(), r.vcpus(),
                                 r.memory_bytes() >> 20);
                    }
                    if (r.has_exit())
                      fmt::print("exit:    {} ({}): {}\n", r.exit().kind(), r.exit().code(),
                                 r.exit().detail());
                    if (r.devices_size()) print_devices(r.devices());
                  }));
  });
  on(app.add_subcommand("events", "Stream VM events until interrupted"),
     [](Ctl& c) { return c.events(); });
  on(app.add_subcommand("devices", "List devices"), [](Ctl& c) {
    return c.call(&v1::Devices::Stub::List, v1::ListDevicesRequest(),
                  std::function<void(const v1::ListDevicesResponse&)>(
                      [](const v1::ListDevicesResponse& r) { print_devices(r.devices()); }));
  });

  auto* add_disk = app.add_subcommand("add-disk", "Cold-plug a virtio-blk disk");
  v1::AddDiskRequest disk_req;
  std::string disk_path, disk_id;
  bool disk_ro = false, disk_iommu = false;
  add_disk->add_option("--path", disk_path)->required();
  add_disk->add_option("--id", disk_id);
  add_disk->add_flag("--readonly", disk_ro);
  add_disk->add_flag("--iommu", disk_iommu);
  on(add_disk, [&](Ctl& c) {
    auto* d = disk_req.mutable_disk();
    d->set_path(disk_path);
    d->set_id(disk_id);
    d->set_readonly(disk_ro);
    d->set_iommu(disk_iommu);
    return c.call(&v1::Devices::Stub::AddDisk, disk_req,
                  std::function<void(const v1::AddDeviceResponse&)>(
                      [](const v1::AddDeviceResponse& r) { fmt::print("{}\n", r.id()); }));
  });

  auto* add_user = app.add_subcommand("add-user-device", "Cold-plug a vfio-user device");
  std::string user_socket, user_ioas, user_id;
  uint64_t user_group = 0;
  bool user_iommu = false;
  add_user->add_option("--socket", user_socket)->required();
  add_user->add_option("--group", user_group);
  add_user->add_option("--ioas", user_ioas);
  add_user->add_option("--id", user_id);
  add_user->add_flag("--iommu", user_iommu);
  on(add_user, [&](Ctl& c) {
    v1::AddUserDeviceRequest req;
    auto* d = req.mutable_device();
    d->set_socket(user_socket);
    d->set_group(user_group);
    d->set_ioas(user_ioas);
    d->set_id(user_id);
    d->set_iommu(user_iommu);
    return c.call(&v1::Devices::Stub::AddUserDevice, req,
                  std::function<void(const v1::AddDeviceResponse&)>(
                      [](const v1::AddDeviceResponse& r) { fmt::print("{}\n", r.id()); }));
  });

  auto* add_vfio = app.add_subcommand("add-device", "Cold-plug a kernel VFIO device");
  std::string vfio_path, vfio_ioas, vfio_id;
  bool vfio_iommu = false;
  add_vfio->add_option("--path", vfio_path)->required();
  add_vfio->add_option("--ioas", vfio_ioas);
  add_vfio->add_option("--id", vfio_id);
  add_vfio->add_flag("--iommu", vfio_iommu);
  on(add_vfio, [&](Ctl& c) {
    v1::AddVfioRequest req;
    auto* d = req.mutable_device();
    d->set_path(vfio_path);
    d->set_ioas(vfio_ioas);
    d->set_id(vfio_id);
    d->set_iommu(vfio_iommu);
    return c.call(&v1::Devices::Stub::AddVfio, req,
                  std::function<void(const v1::AddDeviceResponse&)>(
                      [](const v1::AddDeviceResponse& r) { fmt::print("{}\n", r.id()); }));
  });

  auto* remove = app.add_subcommand("remove-device", "Remove a cold-plugged device");
  std::string remove_id;
  remove->add_option("id", remove_id)->required();
  on(remove, [&](Ctl& c) {
    v1::RemoveDeviceRequest req;
    req.set_id(remove_id);
    return c.call(&v1::Devices::Stub::Remove, req);
  });

  // ioas <verb>
  auto* ioas = app.add_subcommand("ioas", "I/O address spaces");
  ioas->require_subcommand(1);
  on(ioas->add_subcommand("list", "List address spaces"), [](Ctl& c) {
    return c.call(&v1::AddressSpaces::Stub::List, v1::ListAddressSpacesRequest(),
                  std::function<void(const v1::ListAddressSpacesResponse&)>(
                      [](const v1::ListAddressSpacesResponse& r) {
                        std::vector<std::vector<std::string>> rows;
                        for (const auto& a : r.address_spaces()) {
                          std::string devs;
                          for (const auto& d : a.devices()) devs += (devs.empty() ? "" : ",") + d;
                          rows.push_back({std::to_string(a.id()), kind_name(a.kind()), a.name(),
                                          devs.empty() ? "-" : devs, std::to_string(a.mappings()),
                                          std::to_string(a.pinned_bytes())});
                        }
                        print_table({"ID", "KIND", "NAME", "DEVICES", "MAPPINGS", "PINNED"}, rows);
                        fmt::print("pinned in total: {} bytes\n", r.pinned_bytes());
                      }));
  });
  auto* ioas_create = ioas->add_subcommand("create", "Create a host-managed address space");
  std::string ioas_name;
  ioas_create->add_option("name", ioas_name)->required();
  on(ioas_create, [&](Ctl& c) {
    v1::CreateAddressSpaceRequest req;
    req.set_name(ioas_name);
    return c.call(&v1::AddressSpaces::Stub::Create, req,
                  std::function<void(const v1::CreateAddressSpaceResponse&)>(
                      [](const v1::CreateAddressSpaceResponse& r) {
                        fmt::print("{}\n", r.address_space().id());
                      }));
  });
  auto* ioas_destroy = ioas->add_subcommand("destroy", "Destroy an address space");
  uint32_t ioas_id = 0;
  ioas_destroy->add_option("id", ioas_id)->required();
  on(ioas_destroy, [&](Ctl& c) {
    v1::DestroyAddressSpaceRequest req;
    req.set_id(ioas_id);
    return c.call(&v1::AddressSpaces::Stub::Destroy, req);
  });
  auto* ioas_attach = ioas->add_subcommand("attach", "Attach a device to an address space");
  std::string attach_dev;
  ioas_attach->add_option("device", attach_dev)->required();
  ioas_attach->add_option("id", ioas_id)->required();
  on(ioas_attach, [&](Ctl& c) {
    v1::AttachRequest req;
    req.set_device(attach_dev);
    req.set_id(ioas_id);
    return c.call(&v1::AddressSpaces::Stub::Attach, req);
  });
  auto* ioas_detach = ioas->add_subcommand("detach", "Detach a device");
  ioas_detach->add_option("device", attach_dev)->required();
  on(ioas_detach, [&](Ctl& c) {
    v1::DetachRequest req;
    req.set_device(attach_dev);
    return c.call(&v1::AddressSpaces::Stub::Detach, req);
  });
  auto* ioas_map = ioas->add_subcommand("map", "Map guest RAM into an address space");
  uint64_t map_iova = 0, map_gpa = 0, map_len = 0;
  bool map_auto = false, map_ro = false;
  ioas_map->add_option("id", ioas_id)->required();
  ioas_map->add_option("--iova", map_iova);
  ioas_map->add_flag("--auto-iova", map_auto);
  ioas_map->add_option("--gpa", map_gpa)->required();
  ioas_map->add_option("--length", map_len)->required();
  ioas_map->add_flag("--readonly", map_ro, "The device may only read");
  on(ioas_map, [&](Ctl& c) {
    v1::MapRequest req;
    req.set_id(ioas_id);
    req.set_iova(map_iova);
    req.set_auto_iova(map_auto);
    req.set_gpa(map_gpa);
    req.set_length(map_len);
    req.set_readable(true);
    req.set_writable(!map_ro);
    return c.call(&v1::AddressSpaces::Stub::Map, req,
                  std::function<void(const v1::MapResponse&)>(
                      [](const v1::MapResponse& r) { fmt::print("{:#x}\n", r.iova()); }));
  });
  auto* ioas_unmap = ioas->add_subcommand("unmap", "Unmap an IOVA range");
  ioas_unmap->add_option("id", ioas_id)->required();
  ioas_unmap->add_option("--iova", map_iova)->required();
  ioas_unmap->add_option("--length", map_len)->required();
  on(ioas_unmap, [&](Ctl& c) {
    v1::UnmapRequest req;
    req.set_id(ioas_id);
    req.set_iova(map_iova);
    req.set_length(map_len);
    return c.call(&v1::AddressSpaces::Stub::Unmap, req,
                  std::function<void(const v1::UnmapResponse&)>([](const v1::UnmapResponse& r) {
                    fmt::print("unmapped {} bytes\n", r.unmapped_bytes());
                  }));
  });
  auto* ioas_mappings = ioas->add_subcommand("mappings", "List the mappings of an address space");
  uint32_t page = 0;
  ioas_mappings->add_option("id", ioas_id)->required();
  ioas_mappings->add_option("--start", map_iova);
  ioas_mappings->add_option("--page-size", page);
  on(ioas_mappings, [&](Ctl& c) {
    v1::MappingsRequest req;
    req.set_id(ioas_id);
    req.set_start_iova(map_iova);
    req.set_page_size(page);
    return c.call(
        &v1::AddressSpaces::Stub::Mappings, req,
        std::function<void(const v1::MappingsResponse&)>([](const v1::MappingsResponse& r) {
          std::vector<std::vector<std::string>> rows;
          for (const auto& m : r.mappings()) {
            rows.push_back({fmt::format("{:#x}", m.iova()), fmt::format("{:#x}", m.length()),
                            fmt::format("{:#x}", m.gpa()),
                            std::string(m.readable() ? "r" : "-") + (m.writable() ? "w" : "-")});
          }
          print_table({"IOVA", "LENGTH", "GPA", "PERM"}, rows);
          if (r.has_next()) fmt::print("more from --start {:#x}\n", r.next_iova());
        }));
  });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : kExitUsage;
  }
  Ctl ctl(o);
  return action(ctl);
}
