// The gRPC service implementations. Each handler runs on a gRPC thread and hands its work to the
// VMM's control loop with Vmm::call, so API requests are serialized with everything the guest
// and the devices do.
#pragma once

#include "ioasis/v1/address_spaces.grpc.pb.h"
#include "ioasis/v1/devices.grpc.pb.h"
#include "ioasis/v1/vm.grpc.pb.h"
#include "vmm/vmm.h"

namespace ioasis::api {

// The VM's devices as the API lists them: the running VM's, or the configured ones before boot.
void list_devices(Vmm& vmm, google::protobuf::RepeatedPtrField<v1::DeviceInfo>* out);

class VmService final : public v1::Vm::Service {
 public:
  explicit VmService(Vmm& vmm) : vmm_(vmm) {}
  grpc::Status Create(grpc::ServerContext*, const v1::CreateRequest*, v1::CreateResponse*) override;
  grpc::Status Boot(grpc::ServerContext*, const v1::BootRequest*, v1::BootResponse*) override;
  grpc::Status Pause(grpc::ServerContext*, const v1::PauseRequest*, v1::PauseResponse*) override;
  grpc::Status Resume(grpc::ServerContext*, const v1::ResumeRequest*, v1::ResumeResponse*) override;
  grpc::Status Shutdown(grpc::ServerContext*, const v1::ShutdownRequest*,
                        v1::ShutdownResponse*) override;
  grpc::Status Reboot(grpc::ServerContext*, const v1::RebootRequest*, v1::RebootResponse*) override;
  grpc::Status Delete(grpc::ServerContext*, const v1::DeleteRequest*, v1::DeleteResponse*) override;
  grpc::Status Info(grpc::ServerContext*, const v1::InfoRequest*, v1::InfoResponse*) override;
  grpc::Status Ping(grpc::ServerContext*, const v1::PingRequest*, v1::PingResponse*) override;
  grpc::Status Events(grpc::ServerContext*, const v1::EventsRequest*,
                      grpc::ServerWriter<v1::Event>*) override;

 private:
  Vmm& vmm_;
};

class DevicesService final : public v1::Devices::Service {
 public:
  explicit DevicesService(Vmm& vmm) : vmm_(vmm) {}
  grpc::Status AddDisk(grpc::ServerContext*, const v1::AddDiskRequest*,
                       v1::AddDeviceResponse*) override;
  grpc::Status AddUserDevice(grpc::ServerContext*, const v1::AddUserDeviceRequest*,
                             v1::AddDeviceResponse*) override;
  grpc::Status AddVfio(grpc::ServerContext*, const v1::AddVfioRequest*,
                       v1::AddDeviceResponse*) override;
  grpc::Status AddVdpa(grpc::ServerContext*, const v1::AddVdpaRequest*,
                       v1::AddDeviceResponse*) override;
  grpc::Status Remove(grpc::ServerContext*, const v1::RemoveDeviceRequest*,
                      v1::RemoveDeviceResponse*) override;
  grpc::Status List(grpc::ServerContext*, const v1::ListDevicesRequest*,
                    v1::ListDevicesResponse*) override;

 private:
  Vmm& vmm_;
};

class AddressSpacesService final : public v1::AddressSpaces::Service {
 public:
  explicit AddressSpacesService(Vmm& vmm) : vmm_(vmm) {}
  grpc::Status Create(grpc::ServerContext*, const v1::CreateAddressSpaceRequest*,
                      v1::CreateAddressSpaceResponse*) override;
  grpc::Status Destroy(grpc::ServerContext*, const v1::DestroyAddressSpaceRequest*,
                       v1::DestroyAddressSpaceResponse*) override;
  grpc::Status List(grpc::ServerContext*, const v1::ListAddressSpacesRequest*,
                    v1::ListAddressSpacesResponse*) override;
  grpc::Status Attach(grpc::ServerContext*, const v1::AttachRequest*, v1::AttachResponse*) override;
  grpc::Status Detach(grpc::ServerContext*, const v1::DetachRequest*, v1::DetachResponse*) override;
  grpc::Status Map(grpc::ServerContext*, const v1::MapRequest*, v1::MapResponse*) override;
  grpc::Status Unmap(grpc::ServerContext*, const v1::UnmapRequest*, v1::UnmapResponse*) override;
  grpc::Status Mappings(grpc::ServerContext*, const v1::MappingsRequest*,
                        v1::MappingsResponse*) override;

 private:
  Vmm& vmm_;
};

}  // namespace ioasis::api
