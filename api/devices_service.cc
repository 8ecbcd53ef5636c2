#include "api/convert.h"
#include "api/services.h"

namespace ioasis::api {

namespace {
grpc::Status not_yet(const char* what) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, std::string(what) + " is not available in this build");
}
}  // namespace

grpc::Status DevicesService::AddDisk(grpc::ServerContext*, const v1::AddDiskRequest*, v1::AddDeviceResponse*) {
  return not_yet("AddDisk");
}
grpc::Status DevicesService::AddUserDevice(grpc::ServerContext*, const v1::AddUserDeviceRequest*,
                                           v1::AddDeviceResponse*) {
  return not_yet("AddUserDevice");
}
grpc::Status DevicesService::AddVfio(grpc::ServerContext*, const v1::AddVfioRequest*, v1::AddDeviceResponse*) {
  return not_yet("AddVfio");
}
grpc::Status DevicesService::AddVdpa(grpc::ServerContext*, const v1::AddVdpaRequest*, v1::AddDeviceResponse*) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "vDPA devices are reserved for a later version");
}
grpc::Status DevicesService::Remove(grpc::ServerContext*, const v1::RemoveDeviceRequest*,
                                    v1::RemoveDeviceResponse*) {
  return not_yet("Remove");
}
grpc::Status DevicesService::List(grpc::ServerContext*, const v1::ListDevicesRequest*,
                                  v1::ListDevicesResponse* resp) {
  vmm_.call([&]() {
    if (Vm* vm = vmm_.vm()) {
      for (const DeviceRecord& d : vm->devices()) {
        auto* out = resp->add_devices();
        out->set_id(d.id);
        out->set_kind(d.kind);
        out->set_bdf(d.bdf);
        out->set_iommu(d.iommu);
        out->set_failure(d.failure);
      }
    }
    return 0;
  });
  return grpc::Status::OK;
}

}  // namespace ioasis::api
