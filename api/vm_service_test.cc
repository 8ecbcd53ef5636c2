#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cstring>
#include <thread>

#include "api/api_test_util.h"

namespace ioasis::api {
namespace {

using namespace std::chrono_literals;

int count_of(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// Waits until the console shows `what` `n` times, up to `limit`.
bool wait_for_console(ApiFixture& f, const std::string& what, int n,
                      std::chrono::milliseconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (count_of(f.console(), what) >= n) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

using VmLifecycle = ApiFixture;

TEST_F(VmLifecycle, CreateBootPauseResumeShutdown) {
  v1::CreateRequest create;
  *create.mutable_config() = guest("test=heartbeat period_ms=20");
  ASSERT_TRUE(call(vm_.get(), &v1::Vm::Stub::Create, create).ok());
  EXPECT_EQ(info().state(), v1::VM_STATE_CREATED);

  ASSERT_TRUE(call(vm_.get(), &v1::Vm::Stub::Boot, v1::BootRequest()).ok());
  auto running = info();
  EXPECT_EQ(running.state(), v1::VM_STATE_RUNNING);
  EXPECT_EQ(running.vcpus(), 1u);
  EXPECT_EQ(running.memory_bytes(), 64u << 20);
  ASSERT_TRUE(wait_for_console(*this, "tick ", 3, 20s)) << console();

  ASSERT_TRUE(call(vm_.get(), &v1::Vm::Stub::Pause, v1::PauseRequest()).ok());
  EXPECT_EQ(info().state(), v1::VM_STATE_PAUSED);
  int ticks_paused = count_of(console(), "tick ");
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(count_of(console(), "tick "), ticks_paused) << "the guest ran while paused";

  ASSERT_TRUE(call(vm_.get(), &v1::Vm::Stub::Resume, v1::ResumeRequest()).ok());
  EXPECT_TRUE(wait_for_console(*this, "tick ", ticks_paused + 2, 20s))
      << "no progress after resume";

  ASSERT_TRUE(call(vm_.get(), &v1::Vm::Stub::Shutdown, v1::ShutdownRequest()).ok());
  auto stopped = info();
  EXPECT_EQ(stopped.state(), v1::VM_STATE_SHUTDOWN);
  EXPECT_EQ(stopped.exit().kind(), "shutdown-request");
}

TEST_F(VmLifecycle, ShutdownWithGracePressesThePowerButtonAndTheGuestPowersOff) {
  v1::CreateRequest create;
  *create.mutable_config() = guest("test=power-button");
  ASSERT_TRUE(call(vm_.get(), &v1::Vm::Stub::Create, create).ok());
  ASSERT_TRUE(call(vm_.get(), &v1::Vm::Stub::Boot, v1::BootRequest()).ok());
  ASSERT_TRUE(wait_for_console(*this, "waiting for the power button", 1, 20s)) << console();
  v1::ShutdownRequest req;
  req.set_grace_period_ms(20000);
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(call(vm_.get(), &v1::Vm::Stub::Shutdown, req).ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 15s) << "the grace period ran out";
  auto r = info();
  EXPECT_EQ(r.state(), v1::VM_STATE_SHUTDOWN);
  EXPECT_EQ(r.exit().kind(), "power-off") << r.exit().detail();
  EXPECT_NE(console().find("power button pressed: powering off"), std::string::npos) << console();
  // The vCPU that wrote the sleep register ran no further guest code.
  EXPECT_EQ(console().find("FAIL"), std::string::npos) << console();
}

TEST_F(VmLifecycle, ShutdownOfAGuestThatIgnoresTheButtonIsForcedAfterTheGrace) {
  v1::CreateRequest create;
  *create.mutable_config() = guest("test=heartbeat period_ms=20");
  ASSERT_TRUE(call(vm_.get(), &v1::Vm::Stub::Create, create).ok());
  ASSERT_TRUE(call(vm_.get(), &v1::Vm::Stub::Boot, v1::BootRequest()).ok());
  v1::ShutdownRequest req;
  req.set_grace_period_ms(300);
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(call(vm_.get(), &v1::Vm::Stub::Shutdown, req).ok());
  EXPECT_GE(std::chrono::steady_clock::now() - start, 300ms);
  auto r = info();
  EXPECT_EQ(r.state(), v1::VM_STATE_SHUTDOWN);
  EXPECT_EQ(r.exit().kind(), "shutdown-request");
}

TEST_F(VmLifecycle, GuestExitIsReportedWithItsCode) {
  v1::CreateRequest create;
  *create.mutable_config() = guest("test=no-such-scenario");
  ASSERT_TRUE(call(vm_.get(), &v1::Vm::Stub::Create, create).ok());
  ASSERT_TRUE(call(vm_.get(), &v1::Vm::Stub::Boot, v1::BootRequest()).ok());
  v1::InfoResponse r;
  for (int i = 0; i < 500 && (r = info()).state() != v1::VM_STATE_SHUTDOWN; ++i)
    std::this_thread::sleep_for(20ms);
  EXPECT_EQ(r.state(), v1::VM_STATE_SHUTDOWN);
  EXPECT_EQ(r.exit().kind(), "debug-exit");
  EXPECT_EQ(r.exit().code(), 1);
  // A stopped VM boots again from the same configuration.
  EXPECT_TRUE(call(vm_.get(), &v1::Vm::Stub::Boot, v1::BootRequest()).ok());
}

TEST_F(VmLifecycle, EventsStreamStateChangesInOrder) {
  grpc::ClientContext ctx;
  auto reader = vm_->Events(&ctx, v1::EventsRequest());
  std::this_thread::sleep_for(100ms);  // the subscription is in place once the stream is open
  v1::CreateRequest create;
  *create.mutable_config() = guest("test=heartbeat");
  ASSERT_TRUE(call(vm_.get(), &v1::Vm::Stub::Create, create).ok());
  ASSERT_TRUE(call(vm_.get(), &v1::Vm::Stub::Boot, v1::BootRequest()).ok());
  ASSERT_TRUE(call(vm_.get(), &v1::Vm::Stub::Shutdown, v1::ShutdownRequest()).ok());
  std::vector<v1::VmState> states;
  v1::Event e;
  while (states.size() < 3 && reader->Read(&e)) {
    EXPECT_EQ(e.kind(), v1::Event::KIND_STATE_CHANGED);
    EXPECT_GT(e.timestamp_ns(), 0u);
    states.push_back(e.state());
  }
  ctx.TryCancel();
  EXPECT_EQ(states, (std::vector<v1::VmState>{v1::VM_STATE_CREATED, v1::VM_STATE_RUNNING,
                                              v1::VM_STATE_SHUTDOWN}));
}

TEST_F(VmLifecycle, PingAnswersWithVersionAndPid) {
  v1::PingResponse r;
  ASSERT_TRUE(call(vm_.get(), &v1::Vm::Stub::Ping, v1::PingRequest(), &r).ok());
  EXPECT_EQ(r.version(), IOASIS_VERSION);
  EXPECT_EQ(r.pid(), static_cast<uint32_t>(::getpid()));
}

using VmBadInput = ApiFixture;

// Expects `status` to carry `code` and a message that names `field`.
void expect_status(const grpc::Status& status, grpc::StatusCode code, const std::string& field) {
  EXPECT_EQ(status.error_code(), code) << status.error_message();
  EXPECT_NE(status.error_message().find(field), std::string::npos) << status.error_message();
}

TEST_F(VmBadInput, CreateNamesTheBadField) {
  v1::CreateRequest req;
  expect_status(call(vm_.get(), &v1::Vm::Stub::Create, req), grpc::StatusCode::INVALID_ARGUMENT,
                "config");
  *req.mutable_config() = guest("test=boot");
  req.mutable_config()->clear_kernel();
  expect_status(call(vm_.get(), &v1::Vm::Stub::Create, req), grpc::StatusCode::INVALID_ARGUMENT,
                "config.kernel");
  *req.mutable_config() = guest("test=boot");
  req.mutable_config()->set_memory_bytes(5);
  expect_status(call(vm_.get(), &v1::Vm::Stub::Create, req), grpc::StatusCode::INVALID_ARGUMENT,
                "config.memory_bytes");
  *req.mutable_config() = guest("test=boot");
  req.mutable_config()->set_cpus(1000);
  expect_status(call(vm_.get(), &v1::Vm::Stub::Create, req), grpc::StatusCode::INVALID_ARGUMENT,
                "config.cpus");
  *req.mutable_config() = guest("test=boot");
  req.mutable_config()->mutable_serial()->clear_path();
  expect_status(call(vm_.get(), &v1::Vm::Stub::Create, req), grpc::StatusCode::INVALID_ARGUMENT,
                "config.serial.path");
  *req.mutable_config() = guest("test=boot");
  req.mutable_config()->mutable_serial()->set_mode(static_cast<v1::SerialConfig::Mode>(42));
  expect_status(call(vm_.get(), &v1::Vm::Stub::Create, req), grpc::StatusCode::INVALID_ARGUMENT,
                "config.serial.mode");
  *req.mutable_config() = guest("test=boot");
  req.mutable_config()->set_cpu_features("-warp_drive");
  expect_status(call(vm_.get(), &v1::Vm::Stub::Create, req), grpc::StatusCode::INVALID_ARGUMENT,
                "warp_drive");
  EXPECT_EQ(info().state(), v1::VM_STATE_NOT_CREATED);
}

TEST_F(VmBadInput, WrongStateIsFailedPrecondition) {
  expect_status(call(vm_.get(), &v1::Vm::Stub::Boot, v1::BootRequest()),
                grpc::StatusCode::FAILED_PRECONDITION, "not-created");
  expect_status(call(vm_.get(), &v1::Vm::Stub::Pause, v1::PauseRequest()),
                grpc::StatusCode::FAILED_PRECONDITION, "pause");
  expect_status(call(vm_.get(), &v1::Vm::Stub::Resume, v1::ResumeRequest()),
                grpc::StatusCode::FAILED_PRECONDITION, "resume");
  expect_status(call(vm_.get(), &v1::Vm::Stub::Shutdown, v1::ShutdownRequest()),
                grpc::StatusCode::FAILED_PRECONDITION, "shut down");
  v1::CreateRequest create;
  *create.mutable_config() = guest("test=heartbeat");
  ASSERT_TRUE(call(vm_.get(), &v1::Vm::Stub::Create, create).ok());
  expect_status(call(vm_.get(), &v1::Vm::Stub::Create, create), grpc::StatusCode::ALREADY_EXISTS,
                "already");
  expect_status(call(vm_.get(), &v1::Vm::Stub::Resume, v1::ResumeRequest()),
                grpc::StatusCode::FAILED_PRECONDITION, "created");
  v1::ShutdownRequest too_long;
  too_long.set_grace_period_ms(UINT32_MAX);
  expect_status(call(vm_.get(), &v1::Vm::Stub::Shutdown, too_long),
                grpc::StatusCode::INVALID_ARGUMENT, "grace_period_ms");
}

TEST_F(VmBadInput, BootOfMissingKernelFailsAndTheVmmKeepsServing) {
  v1::CreateRequest create;
  *create.mutable_config() = guest("test=boot");
  create.mutable_config()->set_kernel((dir_ / "no-such-kernel").string());
  ASSERT_TRUE(call(vm_.get(), &v1::Vm::Stub::Create, create).ok());
  expect_status(call(vm_.get(), &v1::Vm::Stub::Boot, v1::BootRequest()),
                grpc::StatusCode::FAILED_PRECONDITION, "no-such-kernel");
  EXPECT_EQ(info().state(), v1::VM_STATE_CREATED);
  EXPECT_TRUE(call(vm_.get(), &v1::Vm::Stub::Ping, v1::PingRequest()).ok());
  // A garbage kernel is refused the same way.
  std::ofstream(dir_ / "garbage") << std::string(8192, 'x');
  ASSERT_TRUE(call(vm_.get(), &v1::Vm::Stub::Delete, v1::DeleteRequest()).ok());
  create.mutable_config()->set_kernel((dir_ / "garbage").string());
  ASSERT_TRUE(call(vm_.get(), &v1::Vm::Stub::Create, create).ok());
  expect_status(call(vm_.get(), &v1::Vm::Stub::Boot, v1::BootRequest()),
                grpc::StatusCode::INVALID_ARGUMENT, "neither an ELF");
}

TEST_F(VmBadInput, VdpaIsReserved) {
  v1::AddVdpaRequest req;
  req.set_path("/dev/vhost-vdpa-0");
  EXPECT_EQ(call(devices_.get(), &v1::Devices::Stub::AddVdpa, req).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
}

using ApiSocket = ApiFixture;

TEST_F(ApiSocket, IsOwnerOnly) {
  struct stat st;
  ASSERT_EQ(::stat(socket_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(ApiSocket, SecondServerOnALiveSocketIsRefused) {
  Vmm other(false);
  auto second = ApiServer::start(socket_, other);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code(), Errc::kAlreadyExists);
  EXPECT_NE(second.error().message().find("another process"), std::string::npos);
  // The first server still answers.
  EXPECT_TRUE(call(vm_.get(), &v1::Vm::Stub::Ping, v1::PingRequest()).ok());
}

TEST(ApiSocketPath, StaleSocketIsReplacedAndRegularFileRefused) {
  auto dir =
      std::filesystem::temp_directory_path() / ("ioasis-stale-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string path = (dir / "api.sock").string();
  {
    // A socket file nobody listens on, as a crashed VMM leaves behind.
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, path.c_str());
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  }
  Vmm vmm(false);
  {
    auto server = ApiServer::start(path, vmm);
    EXPECT_TRUE(server.ok()) << server.error().message();
  }
  std::ofstream(dir / "file") << "not a socket";
  auto refused = ApiServer::start((dir / "file").string(), vmm);
  EXPECT_FALSE(refused.ok());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ioasis::api
