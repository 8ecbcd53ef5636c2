// The gRPC server of `ioasis --api-socket PATH`: a UNIX socket readable by its owner only.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "base/result.h"
#include "vmm/vmm.h"

namespace ioasis::api {

class VmService;
class DevicesService;
class AddressSpacesService;

class ApiServer {
 public:
  // Refuses a path where another process is listening; replaces a stale socket file.
  static Result<std::unique_ptr<ApiServer>> start(const std::string& path, Vmm& vmm);
  ~ApiServer();

 private:
  ApiServer(std::string path, Vmm& vmm);
  std::string path_;
  std::unique_ptr<VmService> vm_;
  std::unique_ptr<DevicesService> devices_;
  std::unique_ptr<AddressSpacesService> address_spaces_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace ioasis::api
