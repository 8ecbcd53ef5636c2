// API benchmark: round-trip latency of Ping and Info (p50, p99) over the UNIX socket, and
// sustained requests per second from several concurrent clients. The VMM runs in this process
// with its control loop on a thread, as `ioasis --api-socket` runs it; clients use real gRPC
// channels, one per client.
//
// usage: bench_api [--seconds S] [--clients N]
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "api/client.h"
#include "api/server.h"
#include "ioasis/v1/vm.grpc.pb.h"
#include "vmm/vmm.h"

namespace v1 = ioasis::v1;
using Clock = std::chrono::steady_clock;

namespace {

template <typename Req, typename Resp>
using Method = grpc::Status (v1::Vm::Stub::*)(grpc::ClientContext*, const Req&, Resp*);

template <typename Req, typename Resp>
std::vector<double> latencies_us(v1::Vm::Stub& stub, Method<Req, Resp> method, int n) {
  std::vector<double> out;
  out.reserve(n);
  for (int i = 0; i < n; ++i) {
    grpc::ClientContext ctx;
    Resp resp;
    auto start = Clock::now();
    grpc::Status st = (stub.*method)(&ctx, Req(), &resp);
    auto end = Clock::now();
    if (!st.ok()) {
      fmt::print(stderr, "request failed: {}\n", st.error_message());
      std::exit(1);
    }
    out.push_back(std::chrono::duration<double, std::micro>(end - start).count());
  }
  std::sort(out.begin(), out.end());
  return out;
}

double percentile(const std::vector<double>& sorted, double p) {
  return sorted[std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()))];
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3;
  int clients = 4;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--seconds") seconds = std::stod(argv[i + 1]);
    if (flag == "--clients") clients = std::stoi(argv[i + 1]);
  }
  spdlog::set_level(spdlog::level::warn);
  auto dir = std::filesystem::temp_directory_path() / fmt::format("ioasis-bench-{}", ::getpid());
  std::filesystem::create_directories(dir);
  std::string socket = (dir / "api.sock").string();

  ioasis::Vmm vmm(false);
  auto server = ioasis::api::ApiServer::start(socket, vmm);
  if (!server) {
    fmt::print(stderr, "{}\n", server.error().message());
    return 1;
  }
  std::thread loop([&] { vmm.run(); });

  auto channel = ioasis::api::connect_unix(socket);
  v1::Vm::Stub stub(channel);
  latencies_us(stub, &v1::Vm::Stub::Ping, 200);  // warm up the connection
  auto ping = latencies_us(stub, &v1::Vm::Stub::Ping, 5000);
  auto info = latencies_us(stub, &v1::Vm::Stub::Info, 5000);
  fmt::print("Ping round trip:  p50 {:7.1f} us  p99 {:7.1f} us  (5000 calls, one client)\n",
             percentile(ping, 0.5), percentile(ping, 0.99));
  fmt::print(
      "Info round trip:  p50 {:7.1f} us  p99 {:7.1f} us  (5000 calls, one client; Info runs "
      "on the control loop)\n",
      percentile(info, 0.5), percentile(info, 0.99));

  // Sustained load: `clients` threads, each with its own channel, alternating Ping and Info.
  std::atomic<uint64_t> done{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      grpc::ChannelArguments args;
      args.SetInt("ioasis.bench.client", c);  // a distinct channel (and connection) per client
      auto ch =
          grpc::CreateCustomChannel("unix:" + socket, grpc::InsecureChannelCredentials(), args);
      v1::Vm::Stub s(ch);
      for (uint64_t i = 0; !stop; ++i) {
        grpc::ClientContext ctx;
        grpc::Status st;
        if (i % 2) {
          v1::InfoResponse r;
          st = s.Info(&ctx, v1::InfoRequest(), &r);
        } else {
          v1::PingResponse r;
          st = s.Ping(&ctx, v1::PingRequest(), &r);
        }
        if (st.ok()) done++;
      }
    });
  }
  auto start = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  fmt::print("Sustained: {:.0f} requests/s with {} clients (half Ping, half Info) over {:.1f} s\n",
             done / elapsed, clients, elapsed);

  server->reset();
  vmm.quit(0);
  loop.join();
  std::filesystem::remove_all(dir);
  return 0;
}
