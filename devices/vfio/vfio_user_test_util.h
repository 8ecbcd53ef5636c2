// Helpers shared by the vfio-user tests and benchmark: a memfd standing in for guest RAM, an
// in-process or out-of-process DMA engine server, and a driver for the engine's registers.
#pragma once

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

#include "base/fd.h"
#include "devices/vfio/server/vfio_user_server.h"
#include "devices/vfio/vfio_user_client.h"

namespace ioasis::devices::vfio_user::testing {

// Guest RAM stand-in: a memfd mapped into this process.
struct Memfd {
  UniqueFd fd;
  MappedRegion map;

  static Memfd create(size_t size) {
    Memfd m;
    m.fd.reset(::memfd_create("guest-ram", MFD_CLOEXEC));
    if (::ftruncate(m.fd.get(), static_cast<off_t>(size)) != 0) std::abort();
    m.map = std::move(*MappedRegion::map(size, PROT_READ | PROT_WRITE, MAP_SHARED, m.fd.get(), 0));
    return m;
  }
  uint8_t* at(uint64_t offset) const { return map.data() + offset; }
  iommu::HostRange range(uint64_t offset, uint64_t length) const {
    return {Hva::of(at(offset)), length, fd.get(), offset};
  }
};

inline std::string temp_socket(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("ioasis-vfu-" + std::to_string(::getpid()) + "-" + name + ".sock"))
      .string();
}

// The vfio-user-dma-server binary in a child process.
class ServerProcess {
 public:
  ServerProcess(const std::string& binary, const std::string& socket,
                const std::vector<std::string>& extra = {})
      : socket_(socket) {
    pid_ = ::fork();
    if (pid_ == 0) {
      std::vector<std::string> args = {binary, "--socket", socket, "--log-level", "warn"};
      args.insert(args.end(), extra.begin(), extra.end());
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(binary.c_str(), argv.data());
      ::_exit(127);
    }
  }
  ~ServerProcess() { kill(SIGKILL); }
  // Waits until `path` accepts connections.
  bool wait_listening(const std::string& path, std::chrono::milliseconds timeout) const {
    auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      if (std::filesystem::exists(path)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  void kill(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  std::string socket_;
  pid_t pid_ = -1;
};

// Programs one copy through BAR0 and rings the doorbell.
inline Result<void> start_copy(VfioUserClient& c, uint64_t src, uint64_t dst, uint32_t length) {
  struct [[gnu::packed]] {
    uint64_t src, dst;
    uint32_t length, doorbell;
  } regs{src, dst, length, 1};
  return c.region_write(VFIO_PCI_BAR0_REGION_INDEX, 0,
                        {reinterpret_cast<const uint8_t*>(&regs), sizeof(regs)});
}

inline Result<uint32_t> read_status(VfioUserClient& c) {
  uint32_t status = 0;
  IOASIS_TRY(c.region_read(VFIO_PCI_BAR0_REGION_INDEX, dma_engine::kRegStatus,
                           {reinterpret_cast<uint8_t*>(&status), 4}));
  return status;
}

// Polls STATUS until the engine is no longer busy; returns the final status.
inline Result<uint32_t> wait_idle(VfioUserClient& c,
                                  std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    IOASIS_ASSIGN_OR_RETURN(uint32_t s, read_status(c));
    if ((s & 0xff) != static_cast<uint32_t>(DmaState::kBusy)) return s;
    if (std::chrono::steady_clock::now() > end) return Error(Errc::kUnavailable, "engine busy");
    std::this_thread::yield();
  }
}

inline uint32_t status_of(DmaState state, DmaError error = DmaError::kNone) {
  return static_cast<uint32_t>(state) | static_cast<uint32_t>(error) << 8;
}

}  // namespace ioasis::devices::vfio_user::testing
