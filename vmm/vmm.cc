#include "vmm/vmm.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

namespace ioasis {

namespace asio = boost::asio;

const char* vm_state_name(VmState state) {
  switch (state) {
    case VmState::kNotCreated:
      return "not-created";
    case VmState::kCreated:
      return "created";
    case VmState::kRunning:
      return "running";
    case VmState::kPaused:
      return "paused";
    case VmState::kShutdown:
      return "shutdown";
  }
  return "?";
}

namespace {

uint64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Error wrong_state(const char* op, VmState state) {
  return Error(Errc::kFailedPrecondition,
               fmt::format("cannot {} a VM that is {}", op, vm_state_name(state)));
}

}  // namespace

Vmm::Vmm(bool exit_with_vm) : signals_(io_, SIGINT, SIGTERM), exit_with_vm_(exit_with_vm) {
  signals_.async_wait([this](auto ec, int signo) {
    if (!ec) on_signal(signo);
  });
}

Vmm::~Vmm() { vm_.reset(); }

bool Vmm::on_loop_thread() const { return std::this_thread::get_id() == loop_thread_; }

Result<void> Vmm::create(VmConfig config) {
  if (state_ != VmState::kNotCreated) {
    return Error(Errc::kAlreadyExists,
                 fmt::format("a VM already exists ({}); remove it first", vm_state_name(state_)));
  }
  IOASIS_TRY(config.validate());
  config_ = std::move(config);
  set_state(VmState::kCreated, "created");
  return {};
}

Result<VmConfig*> Vmm::config_for_coldplug() {
  if (state_ != VmState::kCreated) {
    if (state_ == VmState::kNotCreated)
      return Error(Errc::kFailedPrecondition, "no VM has been created");
    return Error(Errc::kFailedPrecondition,
                 fmt::format("devices can only be added or removed before boot (the VM is {}); "
                             "hotplug is not supported",
                             vm_state_name(state_)));
  }
  return &*config_;
}

Result<void> Vmm::boot() {
  // A VM that was shut down boots again from its configuration, as a fresh machine.
  if (state_ != VmState::kCreated && state_ != VmState::kShutdown)
    return wrong_state("boot", state_);
  vm_.reset();
  uint64_t generation = ++generation_;
  auto on_exit = [this, generation](const VmExit& exit) {
    asio::post(io_, [this, generation, exit] {
      if (generation == generation_) on_vm_exit(exit);
    });
  };
  IOASIS_ASSIGN_OR_RETURN(vm_, Vm::create(*config_, io_, on_exit));
  vm_->set_fault_observer([this](const std::string& device, const std::string& what) {
    publish({VmEvent::Kind::kGuestFault, state_, device, what, 0});
  });
  last_exit_.reset();
  vm_->start();
  set_state(VmState::kRunning, "booted");
  return {};
}

Result<void> Vmm::pause() {
  if (state_ != VmState::kRunning) return wrong_state("pause", state_);
  vm_->pause();
  set_state(VmState::kPaused, "paused");
  return {};
}

Result<void> Vmm::resume() {
  if (state_ != VmState::kPaused) return wrong_state("resume", state_);
  vm_->resume();
  set_state(VmState::kRunning, "resumed");
  return {};
}

Result<void> Vmm::press_power_button() {
  if (state_ != VmState::kRunning) return wrong_state("press the power button of", state_);
  vm_->press_power_button();
  return {};
}

Result<void> Vmm::shutdown() {
  if (state_ != VmState::kRunning && state_ != VmState::kPaused)
    return wrong_state("shut down", state_);
  stop_vm({VmExit::Kind::kShutdownRequest, 0, "shutdown requested"});
  return {};
}

void Vmm::stop_vm(VmExit why) {
  vm_->request_exit(std::move(why));
  // The exit is also posted to on_vm_exit behind us (where it finds the VM stopped already);
  // handling it now lets the caller see the final state. A reason the guest latched first wins.
  on_vm_exit(*vm_->exit_reason());
}

Result<void> Vmm::reboot() {
  if (state_ != VmState::kRunning && state_ != VmState::kPaused)
    return wrong_state("reboot", state_);
  ++generation_;  // the old VM's exit, if any is in flight, is not ours to handle any more
  vm_->stop();
  vm_.reset();
  set_state(VmState::kCreated, "rebooting");
  return boot();
}

Result<void> Vmm::remove() {
  if (state_ == VmState::kRunning || state_ == VmState::kPaused)
    return wrong_state("remove", state_);
  vm_.reset();
  config_.reset();
  set_state(VmState::kNotCreated, "removed");
  return {};
}

void Vmm::on_vm_exit(const VmExit& exit) {
  if (state_ != VmState::kRunning && state_ != VmState::kPaused) return;
  if (exit.kind == VmExit::Kind::kVcpuError) {
    spdlog::error("VM stopped: {}", exit.detail);
  } else {
    spdlog::info("VM stopped: {}", exit.detail);
  }
  if (exit.kind == VmExit::Kind::kReset) {
    if (auto r = reboot(); !r) {
      spdlog::error("reboot failed: {}", r.error().message());
    } else {
      return;
    }
  }
  vm_->stop();
  last_exit_ = exit;
  set_state(VmState::kShutdown, exit.detail);
  if (exit_with_vm_) quit(exit.exit_status());
}

void Vmm::on_signal(int signo) {
  spdlog::info("received signal {}, stopping", signo);
  if (vm_ && (state_ == VmState::kRunning || state_ == VmState::kPaused)) {
    stop_vm({VmExit::Kind::kSignal, signo, fmt::format("received signal {}", signo)});
  }
  quit(128 + signo);
}

void Vmm::set_state(VmState state, const std::string& why) {
  state_ = state;
  publish({VmEvent::Kind::kStateChanged, state, "", why, 0});
}

uint64_t Vmm::subscribe(EventHandler handler) {
  std::lock_guard lock(subscribers_mu_);
  subscribers_.emplace(next_subscriber_, std::move(handler));
  return next_subscriber_++;
}

void Vmm::unsubscribe(uint64_t id) {
  std::lock_guard lock(subscribers_mu_);
  subscribers_.erase(id);
}

void Vmm::publish(VmEvent event) {
  event.timestamp_ns = now_ns();
  if (event.kind != VmEvent::Kind::kStateChanged) event.state = state_;
  std::lock_guard lock(subscribers_mu_);
  for (auto& [id, handler] : subscribers_) handler(event);
}

int Vmm::run() {
  loop_thread_ = std::this_thread::get_id();
  auto work = asio::make_work_guard(io_);
  while (!exit_status_) {
    io_.run();
    io_.restart();
  }
  vm_.reset();
  return *exit_status_;
}

void Vmm::quit(int status) {
  asio::post(io_, [this, status] {
    if (!exit_status_) exit_status_ = status;
    io_.stop();
  });
}

}  // namespace ioasis
