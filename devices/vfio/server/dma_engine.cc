#include "devices/vfio/server/dma_engine.h"

#include <sys/mman.h>

#include <chrono>
#include <cstring>

#include "base/log.h"
#include "devices/pci/msix.h"
#include "devices/pci/pci_regs.h"
#include "devices/vfio/vfio_user_protocol.h"

namespace ioasis::devices::vfio_user {

using namespace dma_engine;

namespace {

constexpr auto kSpinBeforeSleep = std::chrono::microseconds(100);

// The register block as the guest sees it, little-endian at the offsets in dma_engine.h.
struct [[gnu::packed]] Registers {
  uint64_t src;
  uint64_t dst;
  uint32_t length;
  uint32_t doorbell;
  uint32_t status;
  uint32_t reserved;
  uint64_t completions;
  uint32_t bar2_trapped;
  uint32_t bar2_sum;
  uint32_t int_status;
};
static_assert(offsetof(Registers, length) == kRegLength);
static_assert(offsetof(Registers, doorbell) == kRegDoorbell);
static_assert(offsetof(Registers, status) == kRegStatus);
static_assert(offsetof(Registers, completions) == kRegCompletions);
static_assert(offsetof(Registers, bar2_trapped) == kRegBar2Trapped);
static_assert(offsetof(Registers, bar2_sum) == kRegBar2Sum);
static_assert(offsetof(Registers, int_status) == kRegIntStatus);

std::vector<uint8_t> msix_capability() {
  // PCI LB 3.0 6.8.2: table size field 0 means one vector; table and PBA in BAR0.
  MsixCapability cap{pci::kCapIdMsix, 0, 0, static_cast<uint32_t>(kMsixTable),
                     static_cast<uint32_t>(kMsixPba)};
  std::vector<uint8_t> bytes(sizeof(cap));
  std::memcpy(bytes.data(), &cap, sizeof(cap));
  return bytes;
}

void signal(const UniqueFd& fd, const char* what) {
  if (!fd.valid()) return;
  uint64_t one = 1;
  if (::write(fd.get(), &one, sizeof(one)) != sizeof(one)) {
    spdlog::warn("dma engine: signalling the {} eventfd failed: {}", what, std::strerror(errno));
  }
}

}  // namespace

DmaEngine::DmaEngine(const DmaEngineOptions& options)
    : config_(PciIds{kVendorId, kDeviceId, kClassCode, 1, kVendorId, kDeviceId,
                     static_cast<uint8_t>(options.intx ? 1 : 0)}),
      intx_(options.intx),
      msi_(options.msi) {}

Result<std::unique_ptr<DmaEngine>> DmaEngine::create(const DmaEngineOptions& options) {
  std::unique_ptr<DmaEngine> e(new DmaEngine(options));
  IOASIS_TRY(e->config_.add_bar(PciBar{0, kBar0Size, PciBarKind::kMemory32, false}));
  IOASIS_TRY(e->config_.add_bar(PciBar{2, kBar2Size, PciBarKind::kMemory32, false}));
  if (options.msi) {
    // 64-bit, one vector, no per-vector masking; the VMM emulates its registers.
    std::vector<uint8_t> msi(pci::msi_capability_size(true, false), 0);
    msi[0] = pci::kCapIdMsi;
    msi[2] = static_cast<uint8_t>(pci::kMsiControl64Bit);
    std::vector<uint8_t> writable(msi.size(), 0xff);
    writable[0] = writable[1] = writable[3] = 0;
    writable[2] = 0x71;  // enable and multiple message enable
    IOASIS_TRY(e->config_.add_capability(msi, writable));
  } else if (!options.intx) {
    auto msix = msix_capability();
    std::vector<uint8_t> msix_writable(msix.size(), 0);
    msix_writable[3] = 0xc0;  // message control: MSI-X enable and function mask
    IOASIS_TRY(e->config_.add_capability(msix, msix_writable));
  }
  if (options.isolation_group) {
    IsolationGroupCapability cap{
        kCapIdVendor, 0, sizeof(cap), kVendorCapIsolationGroup, 0, *options.isolation_group};
    IOASIS_TRY(e->config_.add_capability({reinterpret_cast<const uint8_t*>(&cap), sizeof(cap)}));
  }
  int fd = ::memfd_create("dma-engine-bar2", MFD_CLOEXEC);
  if (fd < 0) return Error::from_errno("memfd_create");
  e->bar2_fd_.reset(fd);
  if (::ftruncate(fd, kBar2Size) < 0) return Error::from_errno("ftruncate");
  IOASIS_ASSIGN_OR_RETURN(e->bar2_,
                          MappedRegion::map(kBar2Size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  e->worker_ = std::thread([p = e.get()] { p->run(); });
  return e;
}

DmaEngine::~DmaEngine() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

uint32_t DmaEngine::status_locked() const {
  return static_cast<uint32_t>(state_) | static_cast<uint32_t>(error_) << 8;
}

void DmaEngine::bar0_read(uint64_t offset, std::span<uint8_t> data) {
  std::memset(data.data(), 0, data.size());
  std::lock_guard lock(mu_);
  if (offset + data.size() <= sizeof(Registers)) {
    Registers r{src_, dst_,         length_,       0,          status_locked(),
                0,    completions_, bar2_trapped_, bar2_sum(), intx_asserted_ ? 1u : 0u};
    std::memcpy(data.data(), reinterpret_cast<uint8_t*>(&r) + offset, data.size());
  } else if (offset >= kMsixTable && offset + data.size() <= kMsixTable + sizeof(msix_table_)) {
    std::memcpy(data.data(), msix_table_ + (offset - kMsixTable), data.size());
  }
  // Everything else, the PBA included (nothing is ever pending here), reads as zero.
}

void DmaEngine::bar0_write(uint64_t offset, std::span<const uint8_t> data) {
  std::unique_lock lock(mu_);
  if (offset >= kMsixTable && offset + data.size() <= kMsixTable + sizeof(msix_table_)) {
    std::memcpy(msix_table_ + (offset - kMsixTable), data.data(), data.size());
    return;
  }
  if (offset + data.size() > sizeof(Registers)) return;
  Registers r{src_, dst_, length_, 0, 0, 0, 0, 0, 0, 0};
  std::memcpy(reinterpret_cast<uint8_t*>(&r) + offset, data.data(), data.size());
  if (r.int_status & 1) intx_asserted_ = false;
  // Registers are latched while a copy runs, as a real engine's would be.
  if (state_ != DmaState::kBusy) {
    src_ = r.src;
    dst_ = r.dst;
    length_ = r.length;
  }
  bool rings = offset <= kRegDoorbell && offset + data.size() > kRegDoorbell;
  if (rings && (r.doorbell & 1)) start_copy();
}

void DmaEngine::start_copy() {
  if (state_ == DmaState::kBusy) {
    error_ = DmaError::kBusy;  // the running copy keeps going; its completion overwrites this
    return;
  }
  state_ = DmaState::kBusy;
  error_ = DmaError::kNone;
  queued_ = true;
  cv_.notify_all();
}

void DmaEngine::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    // A short spin before sleeping: waking a sleeping thread costs tens of microseconds on a
    // virtualized host, longer than a 1 MiB copy takes, and doorbells come in runs.
    auto spin_until = std::chrono::steady_clock::now() + kSpinBeforeSleep;
    while (!queued_ && !stopping_ && std::chrono::steady_clock::now() < spin_until) {
      lock.unlock();
      std::this_thread::yield();
      lock.lock();
    }
    cv_.wait(lock, [&] { return queued_ || stopping_; });
    if (stopping_) return;
    queued_ = false;
    Iova src(src_), dst(dst_);
    uint32_t length = length_;
    lock.unlock();

    DmaError error = DmaError::kNone;
    if (length == 0 || length > kMaxLength) {
      error = DmaError::kBadLength;
    } else if (dma_.check(src, length, false) != DmaFaultKind::kNone) {
      error = DmaError::kSrcUnmapped;
    } else if (auto f = dma_.check(dst, length, true); f != DmaFaultKind::kNone) {
      error = f == DmaFaultKind::kReadOnly ? DmaError::kDstReadOnly : DmaError::kDstUnmapped;
    } else if (auto c = dma_.copy(src, dst, length); c != DmaFaultKind::kNone) {
      error = c == DmaFaultKind::kPeer ? DmaError::kPeer : DmaError::kDstUnmapped;
    }
    bool faulted = error == DmaError::kSrcUnmapped || error == DmaError::kDstUnmapped ||
                   error == DmaError::kDstReadOnly;
    if (error != DmaError::kNone) {
      spdlog::debug("dma engine: copy {:#x} -> {:#x} ({} bytes) failed with error {}", src.value,
                    dst.value, length, static_cast<int>(error));
    }

    lock.lock();
    state_ = error == DmaError::kNone ? DmaState::kDone : DmaState::kError;
    error_ = error;
    ++completions_;
    cv_.notify_all();  // reset() may be waiting for this copy
    lock.unlock();
    if (faulted) trigger_err();
    if (intx_) {
      trigger_intx();
    } else {
      trigger_msi();
    }
    lock.lock();
  }
}

void DmaEngine::set_msi_eventfd(UniqueFd fd) {
  std::lock_guard lock(mu_);
  msi_fd_ = std::move(fd);
}

void DmaEngine::set_err_eventfd(UniqueFd fd) {
  std::lock_guard lock(mu_);
  err_fd_ = std::move(fd);
}

void DmaEngine::trigger_msi() {
  std::lock_guard lock(mu_);
  signal(msi_fd_, "MSI-X");
}

void DmaEngine::trigger_err() {
  std::lock_guard lock(mu_);
  signal(err_fd_, "error IRQ");
}

void DmaEngine::set_intx_eventfd(UniqueFd fd) {
  std::lock_guard lock(mu_);
  intx_fd_ = std::move(fd);
  intx_masked_ = false;
  raise_intx_locked();
}

void DmaEngine::trigger_intx() {
  std::lock_guard lock(mu_);
  intx_asserted_ = true;
  raise_intx_locked();
}

void DmaEngine::set_intx_masked(bool masked) {
  std::lock_guard lock(mu_);
  intx_masked_ = masked;
  raise_intx_locked();
}

void DmaEngine::raise_intx_locked() {
  if (!intx_asserted_ || intx_masked_ || !intx_fd_.valid()) return;
  signal(intx_fd_, "INTx");
  intx_masked_ = true;  // VFIO's automask: the owner unmasks once it has handled the interrupt
}

void DmaEngine::reset() {
  std::unique_lock lock(mu_);
  // A running copy is let finish: its memory is still mapped and stopping halfway helps nobody.
  cv_.wait(lock, [&] { return state_ != DmaState::kBusy || stopping_; });
  src_ = dst_ = completions_ = 0;
  length_ = bar2_trapped_ = 0;
  intx_asserted_ = false;
  state_ = DmaState::kIdle;
  error_ = DmaError::kNone;
  std::memset(msix_table_, 0, sizeof(msix_table_));
  config_.reset();
}

void DmaEngine::bar2_read(uint64_t offset, std::span<uint8_t> data) {
  std::memcpy(data.data(), bar2_.data() + offset, data.size());
  std::lock_guard lock(mu_);
  ++bar2_trapped_;
}

void DmaEngine::bar2_write(uint64_t offset, std::span<const uint8_t> data) {
  std::memcpy(bar2_.data() + offset, data.data(), data.size());
  std::lock_guard lock(mu_);
  ++bar2_trapped_;
}

uint32_t DmaEngine::bar2_sum() const {
  uint32_t sum = 0;
  for (uint64_t at = 0; at < kBar2Size; at += 4) {
    uint32_t word;
    std::memcpy(&word, bar2_.data() + at, 4);
    sum += word;
  }
  return sum;
}

void DmaEngine::config_read(uint64_t offset, std::span<uint8_t> data) {
  for (size_t i = 0; i < data.size(); ++i) {
    uint64_t at = offset + i;
    uint32_t dword = config_.read(static_cast<uint16_t>(at & ~3ull));
    data[i] = static_cast<uint8_t>(dword >> (8 * (at & 3)));
  }
}

void DmaEngine::config_write(uint64_t offset, std::span<const uint8_t> data) {
  size_t i = 0;
  while (i < data.size()) {
    uint64_t dword_offset = (offset + i) & ~3ull;
    uint32_t value = 0;
    uint8_t enables = 0;
    for (; i < data.size() && ((offset + i) & ~3ull) == dword_offset; ++i) {
      unsigned lane = (offset + i) & 3;
      value |= static_cast<uint32_t>(data[i]) << (8 * lane);
      enables |= static_cast<uint8_t>(1u << lane);
    }
    config_.write(static_cast<uint16_t>(dword_offset), value, enables);
  }
}

}  // namespace ioasis::devices::vfio_user
