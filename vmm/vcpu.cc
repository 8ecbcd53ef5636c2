#include "vmm/vcpu.h"

#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <cstring>

namespace ioasis {

namespace {

// The signal that kicks a vCPU thread out of KVM_RUN. Its handler does nothing: the point is the
// EINTR, and `immediate_exit` closes the race with a thread that is just about to enter KVM_RUN.
const int kKickSignal = SIGRTMIN;

void install_kick_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_handler = [](int) {};
    sigemptyset(&sa.sa_mask);
    sigaction(kKickSignal, &sa, nullptr);
  });
}

}  // namespace

void VcpuThread::start() {
  install_kick_handler();
  running_ = true;
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), fmt::format("vcpu{}", vcpu_.id()).c_str());
    // The kick signal is blocked everywhere but in vCPU threads.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, kKickSignal);
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    loop();
    running_ = false;
  });
}

void VcpuThread::kick() {
  vcpu_.set_immediate_exit(true);
  if (thread_.joinable() && running_) pthread_kill(thread_.native_handle(), kKickSignal);
}

void VcpuThread::stop() {
  stopping_ = true;
  {
    std::lock_guard lock(pause_mu_);
    pause_cv_.notify_all();
  }
  kick();
}

void VcpuThread::pause() {
  std::unique_lock lock(pause_mu_);
  pause_requested_ = true;
  pause_flag_ = true;
  while (!parked_ && running_ && !stopping_) {
    lock.unlock();
    kick();  // again, in case the thread was between its check and KVM_RUN
    lock.lock();
    pause_cv_.wait_for(lock, std::chrono::milliseconds(1));
  }
}

void VcpuThread::resume() {
  std::lock_guard lock(pause_mu_);
  pause_requested_ = false;
  pause_flag_ = false;
  pause_cv_.notify_all();
}

bool VcpuThread::wait_while_paused() {
  std::unique_lock lock(pause_mu_);
  parked_ = true;
  pause_cv_.notify_all();
  pause_cv_.wait(lock, [this] { return !pause_requested_ || stopping_; });
  parked_ = false;
  // The kicks that parked us left immediate_exit set; clear it before running again.
  vcpu_.set_immediate_exit(false);
  return !stopping_;
}

void VcpuThread::join() {
  if (thread_.joinable()) {
    // A vCPU may be blocked in KVM_RUN waiting for an interrupt (HLT, an AP waiting for SIPI):
    // keep kicking until it notices.
    while (running_) {
      stop();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    thread_.join();
  }
}

void VcpuThread::loop() {
  while (!stopping_) {
    if (pause_flag_ && !wait_while_paused()) return;
    auto r = vcpu_.run();
    if (!r) {
      if (r.error().sys_errno() == EINTR || r.error().sys_errno() == EAGAIN) continue;
      fail(r.error().message());
      return;
    }
    if (!handle_exit()) return;
  }
}

bool VcpuThread::handle_exit() {
  kvm_run* run = vcpu_.run_data();
  switch (run->exit_reason) {
    // A write that stops the VM (power-off, reset, debug exit) is the last thing this vCPU runs:
    // the guest must not go on past it while the VM is being stopped.
    case KVM_EXIT_IO:
      handle_io(run);
      return !exit_.requested();
    case KVM_EXIT_MMIO:
      handle_mmio(run);
      return !exit_.requested();
    case KVM_EXIT_HLT:
      // Only reachable without an in-kernel LAPIC; nothing to wake us, so treat as power-off.
      exit_.request({VmExit::Kind::kPowerOff, 0, fmt::format("vCPU {} halted", vcpu_.id())});
      return false;
    case KVM_EXIT_SHUTDOWN:
      exit_.request({VmExit::Kind::kReset, 0,
                     fmt::format("vCPU {} triple-faulted (shutdown)\n{}", vcpu_.id(),
                                 describe_state(vcpu_))});
      return false;
    case KVM_EXIT_SYSTEM_EVENT:
      if (run->system_event.type == KVM_SYSTEM_EVENT_RESET) {
        exit_.request({VmExit::Kind::kReset, 0, "guest requested a reset"});
      } else {
        exit_.request({VmExit::Kind::kPowerOff, 0, "guest powered off"});
      }
      return false;
    case KVM_EXIT_INTERNAL_ERROR: {
      std::string data;
      for (uint32_t i = 0; i < run->internal.ndata && i < 16; ++i) {
        data += fmt::format(" {:#x}", run->internal.data[i]);
      }
      fail(fmt::format("KVM internal error, suberror {}{} (an instruction KVM could not emulate?)",
                       run->internal.suberror, data));
      return false;
    }
    case KVM_EXIT_FAIL_ENTRY:
      fail(fmt::format("VM entry failed, hardware reason {:#x}",
                       run->fail_entry.hardware_entry_failure_reason));
      return false;
    case KVM_EXIT_INTR:
      return true;
    default:
      fail(fmt::format("unhandled KVM exit reason {}", run->exit_reason));
      return false;
  }
}

void VcpuThread::handle_io(kvm_run* run) {
  auto* data = reinterpret_cast<uint8_t*>(run) + run->io.data_offset;
  const uint32_t size = run->io.size;
  for (uint32_t i = 0; i < run->io.count; ++i, data += size) {
    std::span<uint8_t> bytes(data, size);
    bool handled = run->io.direction == KVM_EXIT_IO_OUT ? pio_.write(run->io.port, bytes)
                                                        : pio_.read(run->io.port, bytes);
    if (!handled) {
      // Nothing decodes this port: reads float high as on a real bus, writes vanish.
      if (run->io.direction == KVM_EXIT_IO_IN) std::memset(data, 0xff, size);
      spdlog::trace("vCPU {}: unclaimed port {:#x}", vcpu_.id(), run->io.port);
    }
  }
}

void VcpuThread::handle_mmio(kvm_run* run) {
  const uint32_t len = std::min<uint32_t>(run->mmio.len, sizeof(run->mmio.data));
  std::span<uint8_t> bytes(run->mmio.data, len);
  bool handled = run->mmio.is_write ? mmio_.write(run->mmio.phys_addr, bytes)
                                    : mmio_.read(run->mmio.phys_addr, bytes);
  if (!handled) {
    if (!run->mmio.is_write) std::memset(run->mmio.data, 0xff, len);
    spdlog::trace("vCPU {}: unclaimed MMIO {:#x}", vcpu_.id(), run->mmio.phys_addr);
  }
}

void VcpuThread::fail(const std::string& what) {
  exit_.request({VmExit::Kind::kVcpuError, 0,
                 fmt::format("vCPU {}: {}\n{}", vcpu_.id(), what, describe_state(vcpu_))});
}

std::string VcpuThread::describe_state(const kvm::Vcpu& vcpu) {
  auto regs = vcpu.get_regs();
  auto sregs = vcpu.get_sregs();
  if (!regs || !sregs) return "  (registers unavailable)";
  const kvm_regs& r = *regs;
  const kvm_sregs& s = *sregs;
  return fmt::format(
      "  rip={:#018x} rsp={:#018x} rflags={:#x}\n"
      "  rax={:#x} rbx={:#x} rcx={:#x} rdx={:#x} rsi={:#x} rdi={:#x} rbp={:#x}\n"
      "  r8={:#x} r9={:#x} r10={:#x} r11={:#x} r12={:#x} r13={:#x} r14={:#x} r15={:#x}\n"
      "  cs={:#x} (base {:#x} l={} db={}) ss={:#x} ds={:#x}\n"
      "  cr0={:#x} cr2={:#x} cr3={:#x} cr4={:#x} efer={:#x}",
      r.rip, r.rsp, r.rflags, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.r8, r.r9, r.r10,
      r.r11, r.r12, r.r13, r.r14, r.r15, s.cs.selector, s.cs.base, s.cs.l, s.cs.db, s.ss.selector,
      s.ds.selector, s.cr0, s.cr2, s.cr3, s.cr4, s.efer);
}

}  // namespace ioasis
