#include <fmt/format.h>

#include <algorithm>

#include "api/convert.h"
#include "api/services.h"

namespace ioasis::api {

namespace {

constexpr size_t kMaxDiskIdBytes = 20;  // virtio-blk GET_ID returns at most 20 bytes

void fill(v1::DeviceInfo* out, const DeviceRecord& d, std::optional<iommu::IoasId> ioas) {
  out->set_id(d.id);
  out->set_kind(d.kind);
  out->set_bdf(d.bdf);
  out->set_iommu(d.iommu);
  std::optional<Error> failure = d.health ? d.health() : std::nullopt;
  out->set_failure(failure ? failure->message() : d.failure);
  out->set_ioas(ioas ? ioas->value : 0);
}

// The devices a configuration will create, before boot (no BDFs yet).
std::vector<DeviceRecord> configured_devices(const VmConfig& c) {
  std::vector<DeviceRecord> out;
  for (size_t i = 0; i < c.disks.size(); ++i) {
    out.push_back({c.disk_id(i), "virtio-blk", "", c.disks[i].iommu, "", std::nullopt, nullptr});
  }
  for (size_t i = 0; i < c.user_devices.size(); ++i) {
    out.push_back(
        {c.user_device_id(i), "vfio-user", "", c.user_devices[i].iommu, "", std::nullopt, nullptr});
  }
  for (size_t i = 0; i < c.kernel_devices.size(); ++i) {
    out.push_back(
        {c.kernel_device_id(i), "vfio", "", c.kernel_devices[i].iommu, "", std::nullopt, nullptr});
  }
  return out;
}

}  // namespace

void list_devices(Vmm& vmm, google::protobuf::RepeatedPtrField<v1::DeviceInfo>* out) {
  if (Vm* vm = vmm.vm(); vm && vmm.state() != VmState::kCreated) {
    for (const DeviceRecord& d : vm->devices()) {
      std::optional<iommu::IoasId> ioas;
      if (d.dma_device) ioas = vm->ioasids().attached_to(*d.dma_device);
      fill(out->Add(), d, ioas);
    }
  } else if (const auto& config = vmm.config()) {
    for (const DeviceRecord& d : configured_devices(*config)) fill(out->Add(), d, std::nullopt);
  }
}

grpc::Status DevicesService::AddDisk(grpc::ServerContext*, const v1::AddDiskRequest* req,
                                     v1::AddDeviceResponse* resp) {
  const v1::DiskConfig& d = req->disk();
  if (d.path().empty()) return invalid("disk.path", "required");
  if (d.id().size() > kMaxDiskIdBytes) {
    return invalid("disk.id", fmt::format("{} bytes; a virtio-blk id has at most {}", d.id().size(),
                                          kMaxDiskIdBytes));
  }
  return to_status(vmm_.call([&]() -> Result<void> {
    IOASIS_ASSIGN_OR_RETURN(VmConfig * config, vmm_.config_for_coldplug());
    DiskConfig disk{d.path(), d.readonly(), d.iommu(), d.id()};
    if (disk.id.empty()) {
      disk.id = config->free_device_id("disk", config->disks.size());
    } else if (config->has_device_id(disk.id)) {
      return Error(Errc::kAlreadyExists, fmt::format("disk.id: a device '{}' exists", disk.id));
    }
    config->disks.push_back(disk);
    resp->set_id(disk.id);
    vmm_.publish(
        {VmEvent::Kind::kDeviceAdded, vmm_.state(), disk.id, "virtio-blk " + disk.path, 0});
    return {};
  }));
}

// What every cold-plugged passthrough function is checked for: an ioas= that the configuration
// creates, and an id of its own (a free "<prefix><n>" when none is given).
static Result<std::string> coldplug_id(const VmConfig& config, const std::string& ioas,
                                       const std::string& id, std::string_view prefix,
                                       size_t index) {
  if (!ioas.empty() && std::find(config.address_spaces.begin(), config.address_spaces.end(),
                                 ioas) == config.address_spaces.end()) {
    return Error(Errc::kNotFound,
                 fmt::format("device.ioas: no address space '{}' in the configuration", ioas));
  }
  if (id.empty()) return config.free_device_id(prefix, index);
  if (config.has_device_id(id)) {
    return Error(Errc::kAlreadyExists, fmt::format("device.id: a device '{}' exists", id));
  }
  return id;
}

grpc::Status DevicesService::AddUserDevice(grpc::ServerContext*,
                                           const v1::AddUserDeviceRequest* req,
                                           v1::AddDeviceResponse* resp) {
  const v1::UserDeviceConfig& u = req->device();
  if (u.socket().empty()) return invalid("device.socket", "required");
  if (u.iommu() && !u.ioas().empty())
    return invalid("device.ioas", "excludes iommu: the guest chooses");
  return to_status(vmm_.call([&]() -> Result<void> {
    IOASIS_ASSIGN_OR_RETURN(VmConfig * config, vmm_.config_for_coldplug());
    UserDeviceConfig d{u.socket(), u.iommu(), std::nullopt, u.ioas(), u.id()};
    if (u.group()) d.group = u.group();
    IOASIS_ASSIGN_OR_RETURN(
        d.id, coldplug_id(*config, d.ioas, d.id, "user", config->user_devices.size()));
    config->user_devices.push_back(d);
    resp->set_id(d.id);
    vmm_.publish({VmEvent::Kind::kDeviceAdded, vmm_.state(), d.id, "vfio-user " + d.socket, 0});
    return {};
  }));
}

// The device is opened when the VM is built (Boot); a path that cannot be opened fails there.
grpc::Status DevicesService::AddVfio(grpc::ServerContext*, const v1::AddVfioRequest* req,
                                     v1::AddDeviceResponse* resp) {
  const v1::VfioDeviceConfig& v = req->device();
  if (v.path().empty()) return invalid("device.path", "required");
  if (v.iommu() && !v.ioas().empty())
    return invalid("device.ioas", "excludes iommu: the guest chooses");
  return to_status(vmm_.call([&]() -> Result<void> {
    IOASIS_ASSIGN_OR_RETURN(VmConfig * config, vmm_.config_for_coldplug());
    KernelDeviceConfig d{v.path(), v.iommu(), v.ioas(), v.id()};
    IOASIS_ASSIGN_OR_RETURN(
        d.id, coldplug_id(*config, d.ioas, d.id, "vfio", config->kernel_devices.size()));
    config->kernel_devices.push_back(d);
    resp->set_id(d.id);
    vmm_.publish({VmEvent::Kind::kDeviceAdded, vmm_.state(), d.id, "vfio " + d.path, 0});
    return {};
  }));
}

grpc::Status DevicesService::AddVdpa(grpc::ServerContext*, const v1::AddVdpaRequest*,
                                     v1::AddDeviceResponse*) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      "vDPA devices are reserved for a later version");
}

grpc::Status DevicesService::Remove(grpc::ServerContext*, const v1::RemoveDeviceRequest* req,
                                    v1::RemoveDeviceResponse*) {
  if (req->id().empty()) return invalid("id", "required");
  return to_status(vmm_.call([&]() -> Result<void> {
    IOASIS_ASSIGN_OR_RETURN(VmConfig * config, vmm_.config_for_coldplug());
    for (size_t i = 0; i < config->disks.size(); ++i) {
      std::string id = config->disk_id(i);
      if (id == req->id()) {
        config->disks.erase(config->disks.begin() + static_cast<long>(i));
        vmm_.publish({VmEvent::Kind::kDeviceRemoved, vmm_.state(), id, "removed", 0});
        return {};
      }
    }
    for (size_t i = 0; i < config->user_devices.size(); ++i) {
      std::string id = config->user_device_id(i);
      if (id == req->id()) {
        config->user_devices.erase(config->user_devices.begin() + static_cast<long>(i));
        vmm_.publish({VmEvent::Kind::kDeviceRemoved, vmm_.state(), id, "removed", 0});
        return {};
      }
    }
    for (size_t i = 0; i < config->kernel_devices.size(); ++i) {
      std::string id = config->kernel_device_id(i);
      if (id == req->id()) {
        config->kernel_devices.erase(config->kernel_devices.begin() + static_cast<long>(i));
        vmm_.publish({VmEvent::Kind::kDeviceRemoved, vmm_.state(), id, "removed", 0});
        return {};
      }
    }
    return Error(Errc::kNotFound, fmt::format("id: no device '{}'", req->id()));
  }));
}

grpc::Status DevicesService::List(grpc::ServerContext*, const v1::ListDevicesRequest*,
                                  v1::ListDevicesResponse* resp) {
  vmm_.call([&]() {
    list_devices(vmm_, resp->mutable_devices());
    return 0;
  });
  return grpc::Status::OK;
}

}  // namespace ioasis::api
