// The DMA engine server's request side fed arbitrary messages: the input is a sequence of
// header + payload frames, handed to VfioUserServer::handle() as the socket layer would after
// framing. Negotiation is done first so every command is reachable.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "base/log.h"
#include "devices/vfio/server/vfio_user_server.h"

using namespace ioasis::devices::vfio_user;

namespace {

VfioUserServer& server() {
  static auto* s = [] {
    spdlog::set_level(spdlog::level::off);
    ServerOptions options;
    options.socket_path = "/tmp/ioasis-vfu-fuzz-" + std::to_string(::getpid()) + ".sock";
    return VfioUserServer::create(options)->release();
  }();
  return *s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  VfioUserServer& s = server();
  Message version;
  version.header.command = static_cast<uint16_t>(Command::kVersion);
  version.payload = encode_version({});
  (void)s.handle(version);
  while (size >= sizeof(Header)) {
    Message m;
    std::memcpy(&m.header, data, sizeof(Header));
    data += sizeof(Header);
    size -= sizeof(Header);
    size_t body = std::min<size_t>(size, m.header.msg_size % 512);
    m.payload.assign(data, data + body);
    data += body;
    size -= body;
    (void)s.handle(m);
  }
  s.device().dma().clear();
  return 0;
}
