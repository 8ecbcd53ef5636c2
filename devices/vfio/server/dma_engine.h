// A PCI DMA copy engine, the device the vfio-user server exposes. It is small enough to read in
// one sitting and does what a passthrough test needs: DMA through the client's mappings only,
// an error status for a bad IOVA, and an MSI-X interrupt per completion.
//
// PCI identity: vendor 0x1b36 (Red Hat, the vendor of QEMU's emulated test devices), device
// 0x00f0, an id no emulated device uses; class 0x088000 (other system peripheral).
//
// BAR0 (32-bit memory, 8 KiB, trapped: not mmappable):
//   0x00  SRC_IOVA     u64  rw
//   0x08  DST_IOVA     u64  rw
//   0x10  LENGTH       u32  rw   at most 64 MiB
//   0x14  DOORBELL     u32  wo   writing 1 starts the copy
//   0x18  STATUS       u32  ro   bits 0-7 state (DmaState), bits 8-15 error (DmaError)
//   0x20  COMPLETIONS  u64  ro   copies finished, with or without error
//   0x28  BAR2_TRAPPED u32  ro   BAR2 accesses that came as REGION_READ/WRITE messages
//   0x2c  BAR2_SUM     u32  ro   the sum of BAR2's little-endian u32 words, mod 2^32
//   0x30  INT_STATUS   u32  rw1c bit 0: INTx asserted (INTx mode); writing 1 deasserts it
//   0x1000 MSI-X table (one vector), 0x1800 MSI-X PBA
// BAR2 (32-bit memory, 4 KiB): plain scratch memory, mmappable through the region's fd. The two
// BAR2 registers let a guest check that its stores reach the device's memory directly: the sum
// follows them, the trapped count does not.
//
// A copy runs on the engine's own thread; STATUS reads busy meanwhile and a doorbell then is
// refused with kBusy. Each finished copy raises MSI-X vector 0. A copy that fails because an IOVA
// is not mapped, or not writable, also signals VFIO's error IRQ: vfio-user has no fault message,
// and the error IRQ is how a VFIO device tells its owner that something went wrong.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <thread>

#include "base/fd.h"
#include "devices/pci/config_space.h"
#include "devices/vfio/server/dma_regions.h"

namespace ioasis::devices::vfio_user {

namespace dma_engine {
inline constexpr uint16_t kVendorId = 0x1b36;
inline constexpr uint16_t kDeviceId = 0x00f0;
inline constexpr uint32_t kClassCode = 0x088000;

inline constexpr uint64_t kBar0Size = 0x2000;
inline constexpr uint64_t kBar2Size = 0x1000;
inline constexpr uint64_t kRegSrc = 0x00;
inline constexpr uint64_t kRegDst = 0x08;
inline constexpr uint64_t kRegLength = 0x10;
inline constexpr uint64_t kRegDoorbell = 0x14;
inline constexpr uint64_t kRegStatus = 0x18;
inline constexpr uint64_t kRegCompletions = 0x20;
inline constexpr uint64_t kRegBar2Trapped = 0x28;
inline constexpr uint64_t kRegBar2Sum = 0x2c;
inline constexpr uint64_t kRegIntStatus = 0x30;
inline constexpr uint64_t kMsixTable = 0x1000;
inline constexpr uint64_t kMsixPba = 0x1800;
inline constexpr uint32_t kMaxLength = 64u << 20;
}  // namespace dma_engine

enum class DmaState : uint8_t { kIdle = 0, kBusy = 1, kDone = 2, kError = 3 };
enum class DmaError : uint8_t {
  kNone = 0,
  kSrcUnmapped = 1,  // the source is not (entirely) mapped readable
  kDstUnmapped = 2,  // the destination is not (entirely) mapped
  kDstReadOnly = 3,  // the destination is mapped without write permission
  kBadLength = 4,    // zero or above kMaxLength
  kBusy = 5,         // doorbell while a copy runs
  kPeer = 6,         // a socket transfer to the client failed
};

struct DmaEngineOptions {
  std::optional<uint64_t> isolation_group;  // adds the isolation group capability
  // No MSI-X capability: completions raise INTA instead, as VFIO presents INTx: level-triggered
  // and automasked, so after one signal the line stays masked until the owner unmasks it, and a
  // completion meanwhile is held and signalled on unmask.
  bool intx = false;
  // An MSI capability (one vector, 64-bit address) instead of MSI-X: completions signal the
  // VFIO_PCI_MSI_IRQ_INDEX eventfd.
  bool msi = false;
};

class DmaEngine {
 public:
  static Result<std::unique_ptr<DmaEngine>> create(const DmaEngineOptions& options);
  ~DmaEngine();

  DmaRegions& dma() { return dma_; }
  PciConfigSpace& config() { return config_; }
  int bar2_fd() const { return bar2_fd_.get(); }

  // Region accesses as the client sends them; `offset + data.size()` is within the BAR.
  void bar0_read(uint64_t offset, std::span<uint8_t> data);
  void bar0_write(uint64_t offset, std::span<const uint8_t> data);
  void bar2_read(uint64_t offset, std::span<uint8_t> data);
  void bar2_write(uint64_t offset, std::span<const uint8_t> data);
  void config_read(uint64_t offset, std::span<uint8_t> data);
  void config_write(uint64_t offset, std::span<const uint8_t> data);

  // The eventfd the message-signalled interrupt signals: MSI-X vector 0, or MSI with `msi`
  // (invalid: none).
  void set_msi_eventfd(UniqueFd fd);
  void trigger_msi();
  // The eventfd of VFIO_PCI_ERR_IRQ_INDEX, signalled once per copy that faulted (invalid: none).
  void set_err_eventfd(UniqueFd fd);
  void trigger_err();
  // VFIO_PCI_INTX_IRQ_INDEX. INTx is a level: trigger_intx() asserts it (each completion does)
  // and it stays asserted until the driver writes INT_STATUS. VFIO turns the level into eventfd
  // signals: one when it is asserted and unmasked, after which INTx masks itself (automask); an
  // unmask while it is still asserted signals again, so an interrupt the guest could not take yet
  // is not lost.
  void set_intx_eventfd(UniqueFd fd);
  void trigger_intx();
  void set_intx_masked(bool masked);
  bool intx() const { return intx_; }
  bool msi() const { return msi_; }
  // Back to power-on: registers cleared, a running copy finished first.
  void reset();

 private:
  explicit DmaEngine(const DmaEngineOptions& options);
  void run();
  void start_copy();
  uint32_t status_locked() const;
  uint32_t bar2_sum() const;
  // Signals the INTx eventfd if the line is asserted and unmasked, and masks it.
  void raise_intx_locked();

  PciConfigSpace config_;
  DmaRegions dma_;
  UniqueFd bar2_fd_;
  MappedRegion bar2_;

  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t src_ = 0, dst_ = 0, completions_ = 0;
  uint32_t length_ = 0;
  DmaState state_ = DmaState::kIdle;
  DmaError error_ = DmaError::kNone;
  bool queued_ = false;
  bool stopping_ = false;
  uint32_t bar2_trapped_ = 0;
  uint8_t msix_table_[16] = {};
  UniqueFd msi_fd_;
  UniqueFd err_fd_;
  const bool intx_;
  const bool msi_;
  UniqueFd intx_fd_;
  bool intx_masked_ = false;
  bool intx_asserted_ = false;
  std::thread worker_;
};

}  // namespace ioasis::devices::vfio_user
