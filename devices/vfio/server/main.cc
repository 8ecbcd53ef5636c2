// vfio-user-dma-server: serves the DMA engine (dma_engine.h) over vfio-user.
//
//   vfio-user-dma-server --socket PATH [--group G] [--functions N] [--intx | --msi]
//
// Function 0 listens on PATH; with --functions N, function i (1 <= i < N) listens on PATH.i, in
// the same process. --group G declares every function a member of isolation group G (see
// IsolationGroupCapability): a second function of one process is the textbook case of a device
// the host IOMMU cannot isolate from its sibling. --intx serves functions without MSI-X that
// raise INTA on completion. Runs until SIGINT or SIGTERM.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <optional>
#include <vector>

#include "base/log.h"
#include "devices/vfio/server/vfio_user_server.h"

using namespace ioasis::devices::vfio_user;

int main(int argc, char** argv) {
  CLI::App app{"vfio-user server for a PCI DMA copy engine"};
  std::string socket_path;
  std::optional<uint64_t> group;
  int functions = 1;
  bool intx = false;
  bool msi = false;
  std::string log_level = "info";
  app.add_option("--socket", socket_path, "UNIX socket of function 0")->required();
  app.add_option("--group", group, "isolation group shared by all functions");
  app.add_option("--functions", functions, "number of functions")->check(CLI::Range(1, 8));
  auto* intx_flag = app.add_flag("--intx", intx, "no MSI-X: completions raise INTx");
  app.add_flag("--msi", msi, "MSI instead of MSI-X")->excludes(intx_flag);
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off");
  CLI11_PARSE(app, argc, argv);
  if (auto r = ioasis::log::init(log_level); !r.ok()) {
    fmt::print(stderr, "{}\n", r.error().message());
    return 2;
  }

  // Block the signals before any thread starts so that only sigwait below sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::vector<std::unique_ptr<VfioUserServer>> servers;
  for (int i = 0; i < functions; ++i) {
    ServerOptions options;
    options.socket_path = i == 0 ? socket_path : socket_path + "." + std::to_string(i);
    options.device.isolation_group = group;
    options.device.intx = intx;
    options.device.msi = msi;
    auto server = VfioUserServer::create(options);
    if (!server.ok()) {
      spdlog::error("function {}: {}", i, server.error().message());
      return 1;
    }
    (*server)->start();
    spdlog::info("function {} listening on {}", i, options.socket_path);
    servers.push_back(std::move(*server));
  }
  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("signal {}: shutting down", sig);
  return 0;
}
