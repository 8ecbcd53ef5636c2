// The VMM process around at most one VM: the VM's lifecycle (create, boot, pause, resume,
// shutdown, reboot), its events, and the control loop everything runs on. The CLI and the gRPC
// API drive the same object; API threads hand their requests to the control loop with call(), so
// no request races a guest exit or a device.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "base/result.h"
#include "vmm/config/vm_config.h"
#include "vmm/vm.h"
#include "vmm/vm_exit.h"

namespace ioasis {

enum class VmState { kNotCreated, kCreated, kRunning, kPaused, kShutdown };
const char* vm_state_name(VmState state);

struct VmEvent {
  enum class Kind { kStateChanged, kDeviceAdded, kDeviceRemoved, kDeviceFailed, kGuestFault };
  Kind kind = Kind::kStateChanged;
  VmState state = VmState::kNotCreated;  // the state after the event
  std::string device;                    // device events: its id
  std::string message;
  uint64_t timestamp_ns = 0;  // CLOCK_REALTIME
};

class Vmm {
 public:
  using EventHandler = std::function<void(const VmEvent&)>;

  // `exit_with_vm`: the process ends when the VM stops (the CLI without --api-socket).
  explicit Vmm(bool exit_with_vm);
  ~Vmm();

  boost::asio::io_context& io() { return io_; }

  // Lifecycle; each must run on the control loop.
  Result<void> create(VmConfig config);
  Result<void> boot();
  Result<void> pause();
  Result<void> resume();
  // Presses the ACPI power button of a running VM (the graceful half of a shutdown: a guest that
  // honours it powers off, which ends the VM like any power-off).
  Result<void> press_power_button();
  // Stops the vCPUs now (the forced half).
  Result<void> shutdown();
  // Stops the VM and boots a fresh one from the same configuration.
  Result<void> reboot();
  // Forgets a stopped or never-booted VM so that create() may be called again.
  Result<void> remove();

  VmState state() const { return state_; }
  const std::optional<VmConfig>& config() const { return config_; }
  Vm* vm() { return vm_.get(); }
  const std::optional<VmExit>& last_exit() const { return last_exit_; }
  // Mutable access to the configuration before boot, for cold-plugging devices.
  Result<VmConfig*> config_for_coldplug();

  // Runs `fn` on the control loop and waits for its result. From the control loop itself, runs
  // it directly.
  template <typename F>
  auto call(F fn) -> decltype(fn());

  // Delivers every event published from now on, on the control loop, until unsubscribed.
  uint64_t subscribe(EventHandler handler);
  void unsubscribe(uint64_t id);
  void publish(VmEvent event);

  // Runs the control loop until quit(); returns the process exit status.
  int run();
  void quit(int status);

 private:
  void set_state(VmState state, const std::string& why);
  void on_vm_exit(const VmExit& exit);
  // Asks the VM to stop for `why` and handles the exit at once.
  void stop_vm(VmExit why);
  void on_signal(int signo);
  bool on_loop_thread() const;

  boost::asio::io_context io_;
  boost::asio::signal_set signals_;
  bool exit_with_vm_;
  std::optional<int> exit_status_;
  std::thread::id loop_thread_;

  VmState state_ = VmState::kNotCreated;
  std::optional<VmConfig> config_;
  std::unique_ptr<Vm> vm_;
  std::optional<VmExit> last_exit_;
  // Bumped for every VM built, so an exit reported by a VM already replaced is ignored.
  uint64_t generation_ = 0;

  std::mutex subscribers_mu_;
  std::map<uint64_t, EventHandler> subscribers_;
  uint64_t next_subscriber_ = 1;
};

template <typename F>
auto Vmm::call(F fn) -> decltype(fn()) {
  if (on_loop_thread()) return fn();
  using R = decltype(fn());
  std::packaged_task<R()> task(std::move(fn));
  auto result = task.get_future();
  boost::asio::post(io_, [&task] { task(); });
  return result.get();
}

}  // namespace ioasis
