#include "api/client.h"

namespace ioasis::api {

std::shared_ptr<grpc::Channel> connect_unix(const std::string& socket_path) {
  grpc::ChannelArguments args;
  // A VMM that is not there should fail fast rather than be retried for the default 20 s.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  return grpc::CreateCustomChannel("unix:" + socket_path, grpc::InsecureChannelCredentials(), args);
}

}  // namespace ioasis::api
