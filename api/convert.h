// Between the API's protobuf messages and the VMM's own types: configuration, states, and
// errors to gRPC statuses. Field-level checks happen here so that error messages name the API
// field ("config.memory_bytes"), not the command-line flag.
#pragma once

#include <grpcpp/grpcpp.h>

#include "base/result.h"
#include "ioasis/v1/vm.grpc.pb.h"
#include "vmm/config/vm_config.h"
#include "vmm/vm_exit.h"
#include "vmm/vmm.h"

namespace ioasis::api {

grpc::Status to_status(const Error& error);
template <typename T>
grpc::Status to_status(const Result<T>& r) {
  return r.ok() ? grpc::Status::OK : to_status(r.error());
}
grpc::Status invalid(const std::string& field, const std::string& why);

Result<VmConfig> from_proto(const v1::VmConfig& in);
v1::VmConfig to_proto(const VmConfig& in);
v1::VmState to_proto(VmState state);
v1::VmExit to_proto(const VmExit& exit);
v1::Event to_proto(const VmEvent& event);

}  // namespace ioasis::api
