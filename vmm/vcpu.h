// One thread per vCPU: KVM_RUN in a loop, PIO and MMIO exits dispatched synchronously to the
// buses, everything else that ends the VM (power-off, reset, triple fault, an internal error)
// reported to the ExitLatch with the registers that explain it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "devices/bus/bus.h"
#include "vmm/kvm/kvm.h"
#include "vmm/vm_exit.h"

namespace ioasis {

class VcpuThread {
 public:
  VcpuThread(kvm::Vcpu vcpu, const devices::Bus& pio, const devices::Bus& mmio, ExitLatch& exit)
      : vcpu_(std::move(vcpu)), pio_(pio), mmio_(mmio), exit_(exit) {}
  ~VcpuThread() { join(); }

  kvm::Vcpu& vcpu() { return vcpu_; }
  void start();
  // Makes KVM_RUN return and the thread leave its loop.
  void stop();
  void join();
  // Parks the thread outside KVM_RUN and returns once it is parked; resume() lets it go on.
  void pause();
  void resume();

  // Registers, segments and control registers in one line-per-group dump for error reports.
  static std::string describe_state(const kvm::Vcpu& vcpu);

 private:
  void loop();
  // Handles one exit; returns false when the vCPU must stop.
  bool handle_exit();
  void handle_io(kvm_run* run);
  void handle_mmio(kvm_run* run);
  void fail(const std::string& what);
  void kick();
  // Waits while paused; returns false when the thread must stop.
  bool wait_while_paused();

  kvm::Vcpu vcpu_;
  const devices::Bus& pio_;
  const devices::Bus& mmio_;
  ExitLatch& exit_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> running_{false};

  std::mutex pause_mu_;
  std::condition_variable pause_cv_;
  bool pause_requested_ = false;         // guarded by pause_mu_
  bool parked_ = false;                  // guarded by pause_mu_
  std::atomic<bool> pause_flag_{false};  // read without the lock on every exit
};

}  // namespace ioasis
