// A VMM with its API server on a temporary UNIX socket, its control loop on a thread of its
// own, and a real gRPC channel to it: what the API tests drive.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "api/client.h"
#include "api/server.h"
#include "ioasis/v1/address_spaces.grpc.pb.h"
#include "ioasis/v1/devices.grpc.pb.h"
#include "ioasis/v1/vm.grpc.pb.h"
#include "vmm/vmm.h"

namespace ioasis::api {

class ApiFixture : public ::testing::Test {
 public:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ioasis-api-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    std::filesystem::create_directories(dir_);
    socket_ = (dir_ / "api.sock").string();
    vmm_ = std::make_unique<Vmm>(/*exit_with_vm=*/false);
    auto server = ApiServer::start(socket_, *vmm_);
    ASSERT_TRUE(server.ok()) << server.error().message();
    server_ = std::move(*server);
    loop_ = std::thread([this] { vmm_->run(); });
    channel_ = connect_unix(socket_);
    vm_ = v1::Vm::NewStub(channel_);
    devices_ = v1::Devices::NewStub(channel_);
    spaces_ = v1::AddressSpaces::NewStub(channel_);
  }

  void TearDown() override {
    server_.reset();
    vmm_->quit(0);
    if (loop_.joinable()) loop_.join();
    vmm_.reset();
    std::filesystem::remove_all(dir_);
  }

  // The test guest running `scenario` with its console in a file.
  v1::VmConfig guest(const std::string& cmdline) {
    v1::VmConfig c;
    c.set_kernel(IOASIS_TESTGUEST);
    c.set_cmdline(cmdline);
    c.set_memory_bytes(64 << 20);
    c.mutable_serial()->set_mode(v1::SerialConfig::MODE_FILE);
    c.mutable_serial()->set_path(console_path());
    return c;
  }
  std::string console_path() const { return (dir_ / "console.log").string(); }
  std::string console() const {
    std::ifstream in(console_path());
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  template <typename Req, typename Resp, typename Stub>
  grpc::Status call(Stub* stub,
                    grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*),
                    const Req& req, Resp* resp = nullptr) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    Resp local;
    return (stub->*method)(&ctx, req, resp ? resp : &local);
  }

  v1::InfoResponse info() {
    v1::InfoResponse r;
    EXPECT_TRUE(call(vm_.get(), &v1::Vm::Stub::Info, v1::InfoRequest(), &r).ok());
    return r;
  }

  std::filesystem::path dir_;
  std::string socket_;
  std::unique_ptr<Vmm> vmm_;
  std::unique_ptr<ApiServer> server_;
  std::thread loop_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Vm::Stub> vm_;
  std::unique_ptr<v1::Devices::Stub> devices_;
  std::unique_ptr<v1::AddressSpaces::Stub> spaces_;
  static inline int counter_ = 0;
};

}  // namespace ioasis::api
