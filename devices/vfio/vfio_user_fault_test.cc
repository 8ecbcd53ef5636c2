// Servers that misbehave: wrong sizes, wrong ids, silence, death mid-transfer. The client must
// report the failure, refuse further requests at once, and leave this process standing.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <functional>

#include "devices/vfio/vfio_user_client.h"
#include "devices/vfio/vfio_user_test_util.h"

namespace ioasis::devices::vfio_user {
namespace {

using namespace testing;
using namespace std::chrono_literals;
using iommu::Perm;

// A hand-written server on a thread: `script` gets the accepted socket.
class FakeServer {
 public:
  explicit FakeServer(std::function<void(int fd)> script)
      : path_(temp_socket(::testing::UnitTest::GetInstance()->current_test_info()->name())) {
    listener_ = std::move(*listen_unix(path_));
    thread_ = std::thread([this, script] {
      auto fd = accept_unix(listener_.get(), 5s);
      if (!fd.ok()) return;
      script(fd->get());
      // Hold the connection until the test is done with it.
      while (!done_) std::this_thread::sleep_for(5ms);
    });
  }
  ~FakeServer() {
    done_ = true;
    thread_.join();
    ::unlink(path_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  UniqueFd listener_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

Message next(int fd) { return std::move(*receive_message(fd, kMaxMessageSize, 5s)); }

void reply(int fd, const Message& to, std::span<const uint8_t> payload, uint16_t msg_id_delta = 0,
           std::span<const int> fds = {}) {
  Header h{static_cast<uint16_t>(to.header.msg_id + msg_id_delta), to.header.command,
           static_cast<uint32_t>(sizeof(Header) + payload.size()), kTypeReply, 0};
  (void)send_message(fd, h, payload, fds);
}

// Answers VERSION and DEVICE_GET_INFO as a good server would.
void handshake(int fd) {
  reply(fd, next(fd), encode_version({}));
  DeviceInfo info{sizeof(DeviceInfo), VFIO_DEVICE_FLAGS_PCI, VFIO_PCI_NUM_REGIONS,
                  VFIO_PCI_NUM_IRQS};
  reply(fd, next(fd), bytes_of(info));
}

ClientOptions fast() { return ClientOptions{std::chrono::milliseconds(300)}; }

TEST(VfioUserFaultTest, DeviceInfoReplyOfTheWrongSizeFailsTheConnect) {
  FakeServer server([](int fd) {
    reply(fd, next(fd), encode_version({}));
    uint8_t short_reply[8] = {};
    reply(fd, next(fd), short_reply);
  });
  auto client = VfioUserClient::connect(server.path(), fast());
  ASSERT_FALSE(client.ok());
  EXPECT_NE(client.error().message().find("DEVICE_GET_INFO"), std::string::npos)
      << client.error().message();
}

TEST(VfioUserFaultTest, RegionReadReplyWithWrongCountFailsTheClientForGood) {
  FakeServer server([](int fd) {
    handshake(fd);
    Message read = next(fd);
    auto request = *read_struct<RegionAccess>(read.payload, "");
    request.count += 4;  // claims more than was asked
    std::vector<uint8_t> payload;
    append(payload, request);
    payload.resize(payload.size() + request.count);
    reply(fd, read, payload);
  });
  auto client = VfioUserClient::connect(server.path(), fast());
  ASSERT_TRUE(client.ok()) << client.error().message();
  uint8_t data[4];
  EXPECT_FALSE((*client)->region_read(VFIO_PCI_CONFIG_REGION_INDEX, 0, data).ok());
  EXPECT_TRUE((*client)->failed());
  // Later requests fail at once with the recorded reason, without waiting for a deadline.
  auto start = std::chrono::steady_clock::now();
  auto again = (*client)->region_read(VFIO_PCI_CONFIG_REGION_INDEX, 0, data);
  ASSERT_FALSE(again.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 100ms);
  EXPECT_NE(again.error().message().find("REGION_READ"), std::string::npos);
}

TEST(VfioUserFaultTest, ReplyWithAnotherMessageIdFailsTheClient) {
  FakeServer server([](int fd) {
    handshake(fd);
    reply(fd, next(fd), {}, /*msg_id_delta=*/1);
  });
  auto client = VfioUserClient::connect(server.path(), fast());
  ASSERT_TRUE(client.ok());
  EXPECT_FALSE((*client)->reset().ok());
  EXPECT_TRUE((*client)->failed());
  EXPECT_NE((*client)->failure()->message().find("unexpected reply"), std::string::npos);
}

TEST(VfioUserFaultTest, OversizedMessageFailsTheClient) {
  FakeServer server([](int fd) {
    handshake(fd);
    Message m = next(fd);
    Header h{m.header.msg_id, m.header.command, 0xffffffff, kTypeReply, 0};
    (void)send_message(fd, h, {});
  });
  auto client = VfioUserClient::connect(server.path(), fast());
  ASSERT_TRUE(client.ok());
  EXPECT_FALSE((*client)->reset().ok());
  EXPECT_NE((*client)->failure()->message().find("message size"), std::string::npos);
}

TEST(VfioUserFaultTest, IrqInfoReplyCarryingAnFdFailsTheClient) {
  FakeServer server([](int fd) {
    handshake(fd);
    Message m = next(fd);
    vfio_irq_info info{sizeof(info), 0, VFIO_PCI_MSIX_IRQ_INDEX, 1};
    int stray[] = {fd};
    reply(fd, m, bytes_of(info), 0, stray);
  });
  auto client = VfioUserClient::connect(server.path(), fast());
  ASSERT_TRUE(client.ok());
  EXPECT_FALSE((*client)->irq_info(VFIO_PCI_MSIX_IRQ_INDEX).ok());
  EXPECT_TRUE((*client)->failed());
}

TEST(VfioUserFaultTest, SilentServerFailsTheClientAtTheDeadline) {
  FakeServer server([](int fd) { (void)next(fd); });
  auto start = std::chrono::steady_clock::now();
  auto client = VfioUserClient::connect(server.path(), fast());
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.error().code(), Errc::kUnavailable);
  EXPECT_NE(client.error().message().find("no reply to VERSION"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

TEST(VfioUserFaultTest, ServerHangingUpMidRequestFailsTheClient) {
  FakeServer server([](int fd) {
    handshake(fd);
    (void)next(fd);
    ::shutdown(fd, SHUT_RDWR);
  });
  auto client = VfioUserClient::connect(server.path(), fast());
  ASSERT_TRUE(client.ok());
  auto r = (*client)->reset();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::kUnavailable);
  EXPECT_TRUE((*client)->failed());
}

TEST(VfioUserFaultTest, ServerKilledMidTransferFailsTheClientAndTouchesNothingElse) {
  std::string sock = temp_socket("killed");
  ServerProcess server(VFIO_USER_DMA_SERVER_BIN, sock);
  ASSERT_TRUE(server.wait_listening(sock, 10s));
  auto client = VfioUserClient::connect(sock, fast());
  ASSERT_TRUE(client.ok());
  constexpr uint64_t kHalf = 32 << 20;
  Memfd ram = Memfd::create(2 * kHalf + 4096);
  std::memset(ram.at(0), 0x77, kHalf);
  std::memset(ram.at(2 * kHalf), 0xee, 4096);  // never mapped: a guard
  ASSERT_TRUE((*client)->dma_map(Iova(0), ram.range(0, 2 * kHalf), Perm::kReadWrite).ok());
  ASSERT_TRUE(start_copy(**client, 0, kHalf, kHalf).ok());
  server.kill(SIGKILL);
  uint32_t status;
  EXPECT_FALSE((*client)
                   ->region_read(VFIO_PCI_BAR0_REGION_INDEX, dma_engine::kRegStatus,
                                 {reinterpret_cast<uint8_t*>(&status), 4})
                   .ok());
  EXPECT_TRUE((*client)->failed());
  EXPECT_EQ(*ram.at(0), 0x77);
  for (int i = 0; i < 4096; ++i) ASSERT_EQ(*ram.at(2 * kHalf + i), 0xee);
}

TEST(VfioUserFaultTest, UnmapDuringACopyReturnsOnlyWhenTheServerStoppedWriting) {
  ServerOptions options;
  options.socket_path = temp_socket("unmap-during");
  auto server = VfioUserServer::create(options);
  ASSERT_TRUE(server.ok());
  (*server)->start();
  auto client = VfioUserClient::connect(options.socket_path);
  ASSERT_TRUE(client.ok());
  constexpr uint64_t kSize = 32 << 20;
  Memfd ram = Memfd::create(2 * kSize + 4096);
  std::memset(ram.at(0), 0x5c, kSize);
  std::memset(ram.at(2 * kSize), 0xee, 4096);
  ASSERT_TRUE((*client)->dma_map(Iova(0), ram.range(0, kSize), Perm::kRead).ok());
  ASSERT_TRUE((*client)->dma_map(Iova(kSize), ram.range(kSize, kSize), Perm::kReadWrite).ok());
  ASSERT_TRUE(start_copy(**client, 0, kSize, kSize).ok());
  ASSERT_TRUE((*client)->dma_unmap(Iova(kSize), kSize).ok());
  std::vector<uint8_t> after_unmap(ram.at(kSize), ram.at(2 * kSize));
  auto status = wait_idle(**client);
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(*status == status_of(DmaState::kDone) ||
              *status == status_of(DmaState::kError, DmaError::kDstUnmapped))
      << std::hex << *status;
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(std::memcmp(after_unmap.data(), ram.at(kSize), kSize), 0)
      << "the server wrote after DMA_UNMAP returned";
  for (int i = 0; i < 4096; ++i) ASSERT_EQ(*ram.at(2 * kSize + i), 0xee);
}

}  // namespace
}  // namespace ioasis::devices::vfio_user
