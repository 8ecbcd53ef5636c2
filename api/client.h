// Connecting to an ioasis API socket, shared by ioasisctl, the tests and the benchmarks.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

namespace ioasis::api {

// A channel to `unix:PATH`. Connection happens lazily, on the first call.
std::shared_ptr<grpc::Channel> connect_unix(const std::string& socket_path);

}  // namespace ioasis::api
