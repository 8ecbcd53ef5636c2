#include "devices/legacy/serial_output.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

namespace ioasis::devices {
namespace {

std::span<const uint8_t> bytes(const std::string& s) {
  return std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// A private directory for a socket, removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    char dir[] = "/tmp/ioasis-serial-XXXXXX";
    EXPECT_NE(::mkdtemp(dir), nullptr);
    path_ = dir;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string socket() const { return path_ + "/console.sock"; }

 private:
  std::string path_;
};

UniqueFd connect_to(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  return fd;
}

std::string read_some(int fd) {
  char buf[64];
  ssize_t n = ::read(fd, buf, sizeof(buf));
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

TEST(FdSerialOutput, WritesEveryByteToTheDescriptor) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  UniqueFd reader(p[0]);
  FdSerialOutput out{UniqueFd(p[1])};
  out.write(bytes("boot ok\n"));
  EXPECT_EQ(read_some(reader.get()), "boot ok\n");
}

TEST(SerialSocketServer, ClientReceivesOutputAndSendsInput) {
  TempDir dir;
  std::string path = dir.socket();
  std::string input;
  auto server = SerialSocketServer::listen(
      path, [&](std::span<const uint8_t> b) { input.append(b.begin(), b.end()); });
  ASSERT_TRUE(server.ok()) << server.error().message();
  (*server)->write(bytes("lost"));  // nobody listening yet

  UniqueFd client = connect_to(path);
  ASSERT_TRUE(*(*server)->poll_once(1000));
  ASSERT_TRUE((*server)->has_client());
  (*server)->write(bytes("login: "));
  EXPECT_EQ(read_some(client.get()), "login: ");

  ASSERT_EQ(::write(client.get(), "root\n", 5), 5);
  ASSERT_TRUE(*(*server)->poll_once(1000));
  EXPECT_EQ(input, "root\n");

  client.reset();
  ASSERT_TRUE(*(*server)->poll_once(1000));
  EXPECT_FALSE((*server)->has_client());
}

TEST(SerialSocketServer, PollThreadAcceptsAndStops) {
  TempDir dir;
  std::string path = dir.socket();
  auto server = SerialSocketServer::listen(path, nullptr);
  ASSERT_TRUE(server.ok());
  (*server)->start();
  UniqueFd client = connect_to(path);
  for (int i = 0; i < 200 && !(*server)->has_client(); ++i) ::usleep(5000);
  ASSERT_TRUE((*server)->has_client());
  (*server)->write(bytes("x"));
  EXPECT_EQ(read_some(client.get()), "x");
  (*server)->stop();
  server->reset();
  EXPECT_NE(::access(path.c_str(), F_OK), 0);  // the socket file is removed
}

TEST(SerialSocketServer, RefusesAPathThatExists) {
  TempDir dir;
  std::string path = dir.socket();
  auto first = SerialSocketServer::listen(path, nullptr);
  ASSERT_TRUE(first.ok());
  auto second = SerialSocketServer::listen(path, nullptr);
  EXPECT_FALSE(second.ok());
}

}  // namespace
}  // namespace ioasis::devices
