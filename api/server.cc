#include "api/server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cstring>

#include "api/services.h"
#include "base/fd.h"

namespace ioasis::api {

namespace {

// A socket file with a listener behind it belongs to another VMM; one without is left over from
// a VMM that died and may be replaced.
Result<void> claim_socket_path(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) < 0) {
    if (errno == ENOENT) return {};
    return Error::from_errno(fmt::format("--api-socket {}", path));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return Error(Errc::kAlreadyExists,
                 fmt::format("--api-socket {}: exists and is not a socket", path));
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return Error(Errc::kInvalidArgument, fmt::format("--api-socket {}: path too long", path));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (::connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    return Error(Errc::kAlreadyExists,
                 fmt::format("--api-socket {}: another process is serving this socket", path));
  }
  if (::unlink(path.c_str()) < 0)
    return Error::from_errno(fmt::format("removing stale socket {}", path));
  spdlog::info("removed stale API socket {}", path);
  return {};
}

}  // namespace

ApiServer::ApiServer(std::string path, Vmm& vmm)
    : path_(std::move(path)),
      vm_(std::make_unique<VmService>(vmm)),
      devices_(std::make_unique<DevicesService>(vmm)),
      address_spaces_(std::make_unique<AddressSpacesService>(vmm)) {}

Result<std::unique_ptr<ApiServer>> ApiServer::start(const std::string& path, Vmm& vmm) {
  IOASIS_TRY(claim_socket_path(path));
  std::unique_ptr<ApiServer> server(new ApiServer(path, vmm));
  grpc::ServerBuilder builder;
  int bound = 0;
  builder.AddListeningPort("unix:" + path, grpc::InsecureServerCredentials(), &bound);
  builder.RegisterService(server->vm_.get());
  builder.RegisterService(server->devices_.get());
  builder.RegisterService(server->address_spaces_.get());
  // The socket is created inside BuildAndStart: a tight umask makes it 0600 from its first
  // moment, so no other user can connect in between.
  mode_t old_umask = ::umask(0177);
  server->server_ = builder.BuildAndStart();
  ::umask(old_umask);
  if (!server->server_ || !bound) {
    return Error(Errc::kUnavailable, fmt::format("--api-socket {}: could not listen", path));
  }
  spdlog::info("API listening on {}", path);
  return server;
}

ApiServer::~ApiServer() {
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server_->Wait();
  }
  ::unlink(path_.c_str());
}

}  // namespace ioasis::api
