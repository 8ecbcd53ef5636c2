#include "api/convert.h"

#include <fmt/format.h>

namespace ioasis::api {

grpc::Status to_status(const Error& error) {
  grpc::StatusCode code = grpc::StatusCode::INTERNAL;
  switch (error.code()) {
    case Errc::kInvalidArgument:
      code = grpc::StatusCode::INVALID_ARGUMENT;
      break;
    case Errc::kNotFound:
      code = grpc::StatusCode::NOT_FOUND;
      break;
    case Errc::kAlreadyExists:
      code = grpc::StatusCode::ALREADY_EXISTS;
      break;
    case Errc::kFailedPrecondition:
      code = grpc::StatusCode::FAILED_PRECONDITION;
      break;
    case Errc::kResourceExhausted:
      code = grpc::StatusCode::RESOURCE_EXHAUSTED;
      break;
    case Errc::kPermissionDenied:
      code = grpc::StatusCode::PERMISSION_DENIED;
      break;
    case Errc::kUnavailable:
      code = grpc::StatusCode::UNAVAILABLE;
      break;
    case Errc::kUnsupported:
      code = grpc::StatusCode::UNIMPLEMENTED;
      break;
    // The host said no to something the request named (a missing kernel file, a refused
    // ioctl): the request cannot succeed until the host changes.
    case Errc::kIo:
      code = grpc::StatusCode::FAILED_PRECONDITION;
      break;
    case Errc::kInternal:
      code = grpc::StatusCode::INTERNAL;
      break;
  }
  return grpc::Status(code, error.message());
}

grpc::Status invalid(const std::string& field, const std::string& why) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, field + ": " + why);
}

namespace {

Error bad_field(const std::string& field, const std::string& why) {
  return Error(Errc::kInvalidArgument, field + ": " + why);
}

}  // namespace

Result<VmConfig> from_proto(const v1::VmConfig& in) {
  VmConfig c;
  if (in.kernel().empty()) return bad_field("config.kernel", "required");
  c.kernel = in.kernel();
  if (!in.initramfs().empty()) c.initramfs = in.initramfs();
  c.cmdline = in.cmdline();
  if (in.memory_bytes()) {
    if (in.memory_bytes() < (4u << 20) || in.memory_bytes() % 4096) {
      return bad_field(
          "config.memory_bytes",
          fmt::format("{} is not a multiple of 4096 of at least 4 MiB", in.memory_bytes()));
    }
    c.memory_size = in.memory_bytes();
  }
  if (in.cpus()) {
    if (in.cpus() > 254)
      return bad_field("config.cpus", fmt::format("{} is more than 254", in.cpus()));
    c.cpus = in.cpus();
  }
  if (!in.cpu_features().empty()) c.cpu_features = in.cpu_features();
  switch (in.serial().mode()) {
    case v1::SerialConfig::MODE_UNSPECIFIED:
    case v1::SerialConfig::MODE_STDIO:
      c.serial.mode = SerialConfig::Mode::kStdio;
      break;
    case v1::SerialConfig::MODE_OFF:
      c.serial.mode = SerialConfig::Mode::kOff;
      break;
    case v1::SerialConfig::MODE_FILE:
      c.serial.mode = SerialConfig::Mode::kFile;
      break;
    case v1::SerialConfig::MODE_SOCKET:
      c.serial.mode = SerialConfig::Mode::kSocket;
      break;
    default:
      return bad_field("config.serial.mode",
                       fmt::format("unknown mode {}", static_cast<int>(in.serial().mode())));
  }
  if (c.serial.mode == SerialConfig::Mode::kFile || c.serial.mode == SerialConfig::Mode::kSocket) {
    if (in.serial().path().empty())
      return bad_field("config.serial.path", "required for file and socket modes");
    c.serial.path = in.serial().path();
  }
  c.iommu = in.iommu();
  for (int i = 0; i < in.disks_size(); ++i) {
    const v1::DiskConfig& d = in.disks(i);
    std::string field = fmt::format("config.disks[{}]", i);
    if (d.path().empty()) return bad_field(field + ".path", "required");
    if (d.id().size() > 20) return bad_field(field + ".id", "more than 20 bytes");
    c.disks.push_back({d.path(), d.readonly(), d.iommu(), d.id()});
  }
  for (int i = 0; i < in.user_devices_size(); ++i) {
    const v1::UserDeviceConfig& u = in.user_devices(i);
    if (u.socket().empty())
      return bad_field(fmt::format("config.user_devices[{}].socket", i), "required");
    if (u.iommu() && !u.ioas().empty()) {
      return bad_field(fmt::format("config.user_devices[{}].ioas", i),
                       "excludes iommu: the guest chooses");
    }
    UserDeviceConfig d{u.socket(), u.iommu(), std::nullopt, u.ioas(), u.id()};
    if (u.group()) d.group = u.group();
    c.user_devices.push_back(d);
  }
  for (int i = 0; i < in.vfio_devices_size(); ++i) {
    const v1::VfioDeviceConfig& v = in.vfio_devices(i);
    if (v.path().empty())
      return bad_field(fmt::format("config.vfio_devices[{}].path", i), "required");
    if (v.iommu() && !v.ioas().empty()) {
      return bad_field(fmt::format("config.vfio_devices[{}].ioas", i),
                       "excludes iommu: the guest chooses");
    }
    c.kernel_devices.push_back({v.path(), v.iommu(), v.ioas(), v.id()});
  }
  for (const std::string& name : in.address_spaces()) c.address_spaces.push_back(name);
  IOASIS_TRY(c.validate());
  return c;
}

v1::VmConfig to_proto(const VmConfig& in) {
  v1::VmConfig out;
  out.set_kernel(in.kernel);
  out.set_initramfs(in.initramfs.value_or(""));
  out.set_cmdline(in.cmdline);
  out.set_memory_bytes(in.memory_size);
  out.set_cpus(in.cpus);
  out.set_cpu_features(in.cpu_features);
  auto* serial = out.mutable_serial();
  switch (in.serial.mode) {
    case SerialConfig::Mode::kStdio:
      serial->set_mode(v1::SerialConfig::MODE_STDIO);
      break;
    case SerialConfig::Mode::kOff:
      serial->set_mode(v1::SerialConfig::MODE_OFF);
      break;
    case SerialConfig::Mode::kFile:
      serial->set_mode(v1::SerialConfig::MODE_FILE);
      break;
    case SerialConfig::Mode::kSocket:
      serial->set_mode(v1::SerialConfig::MODE_SOCKET);
      break;
  }
  serial->set_path(in.serial.path);
  out.set_iommu(in.iommu);
  for (const DiskConfig& d : in.disks) {
    auto* disk = out.add_disks();
    disk->set_path(d.path);
    disk->set_readonly(d.readonly);
    disk->set_iommu(d.iommu);
    disk->set_id(d.id);
  }
  for (const UserDeviceConfig& u : in.user_devices) {
    auto* dev = out.add_user_devices();
    dev->set_socket(u.socket);
    dev->set_iommu(u.iommu);
    dev->set_group(u.group.value_or(0));
    dev->set_ioas(u.ioas);
    dev->set_id(u.id);
  }
  for (const KernelDeviceConfig& k : in.kernel_devices) {
    auto* dev = out.add_vfio_devices();
    dev->set_path(k.path);
    dev->set_iommu(k.iommu);
    dev->set_ioas(k.ioas);
    dev->set_id(k.id);
  }
  for (const std::string& name : in.address_spaces) out.add_address_spaces(name);
  return out;
}

v1::VmState to_proto(VmState state) {
  switch (state) {
    case VmState::kNotCreated:
      return v1::VM_STATE_NOT_CREATED;
    case VmState::kCreated:
      return v1::VM_STATE_CREATED;
    case VmState::kRunning:
      return v1::VM_STATE_RUNNING;
    case VmState::kPaused:
      return v1::VM_STATE_PAUSED;
    case VmState::kShutdown:
      return v1::VM_STATE_SHUTDOWN;
  }
  return v1::VM_STATE_UNSPECIFIED;
}

v1::VmExit to_proto(const VmExit& exit) {
  v1::VmExit out;
  switch (exit.kind) {
    case VmExit::Kind::kPowerOff:
      out.set_kind("power-off");
      break;
    case VmExit::Kind::kReset:
      out.set_kind("reset");
      break;
    case VmExit::Kind::kDebugExit:
      out.set_kind("debug-exit");
      break;
    case VmExit::Kind::kSignal:
      out.set_kind("signal");
      break;
    case VmExit::Kind::kVcpuError:
      out.set_kind("vcpu-error");
      break;
    case VmExit::Kind::kShutdownRequest:
      out.set_kind("shutdown-request");
      break;
  }
  out.set_code(exit.code);
  out.set_detail(exit.detail);
  return out;
}

v1::Event to_proto(const VmEvent& event) {
  v1::Event out;
  switch (event.kind) {
    case VmEvent::Kind::kStateChanged:
      out.set_kind(v1::Event::KIND_STATE_CHANGED);
      break;
    case VmEvent::Kind::kDeviceAdded:
      out.set_kind(v1::Event::KIND_DEVICE_ADDED);
      break;
    case VmEvent::Kind::kDeviceRemoved:
      out.set_kind(v1::Event::KIND_DEVICE_REMOVED);
      break;
    case VmEvent::Kind::kDeviceFailed:
      out.set_kind(v1::Event::KIND_DEVICE_FAILED);
      break;
    case VmEvent::Kind::kGuestFault:
      out.set_kind(v1::Event::KIND_GUEST_FAULT);
      break;
  }
  out.set_state(to_proto(event.state));
  out.set_device(event.device);
  out.set_message(event.message);
  out.set_timestamp_ns(event.timestamp_ns);
  return out;
}

}  // namespace ioasis::api
