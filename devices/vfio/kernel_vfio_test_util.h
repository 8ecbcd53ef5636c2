// Test helpers for kernel VFIO: the DMA engine (the vfio-user server's device) standing behind a
// FAKE kernel VFIO device fd, with its DMA translated by the fake's IOMMU state, and a scratch
// sysfs tree with the iommu_group links the opener reads.
#pragma once

#include <poll.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <string>
#include <thread>

#include "devices/vfio/server/dma_engine.h"
#include "iommu/testing/fake_kernel.h"

namespace ioasis::devices::testing {

// FAKE device model: the DMA engine's regions and MSI-X behind a fake VFIO device fd. Before each
// doorbell the engine's DMA table is refilled from what the fake IOMMU lets this device reach, and
// every byte moves through FakeKernel::dma(), so an IOVA the IOMMU does not map fails the copy.
// With `intx` the engine has INTx instead of MSI-X, automasked, and an unmask eventfd is watched
// by a thread of the model, as the kernel's virqfd would.
class EngineModel : public iommu::testing::FakeVfioModel {
 public:
  EngineModel(iommu::testing::FakeKernel& fake, std::string cdev, bool with_reset = true,
              bool intx = false)
      : fake_(fake), cdev_(std::move(cdev)), with_reset_(with_reset), intx_(intx) {
    vfio_user::DmaEngineOptions options;
    options.intx = intx;
    engine_ = std::move(*vfio_user::DmaEngine::create(options));
    engine_->dma().set_remote(
        [this](Iova iova, std::span<uint8_t> data, bool write) -> Result<void> {
          if (fake_.dma(cdev_, iova.value, data, write) != 0) {
            return Error(Errc::kPermissionDenied, "IOMMU fault");
          }
          return {};
        });
  }

  vfio_user::DmaEngine& engine() { return *engine_; }
  int resets = 0;

  uint32_t device_flags() const override {
    return VFIO_DEVICE_FLAGS_PCI | (with_reset_ ? VFIO_DEVICE_FLAGS_RESET : 0);
  }
  Region region(uint32_t index) const override {
    constexpr uint32_t kRw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
    switch (index) {
      case VFIO_PCI_BAR0_REGION_INDEX:
        return {vfio_user::dma_engine::kBar0Size, kRw, {}, -1};
      case VFIO_PCI_BAR2_REGION_INDEX:
        // A sparse area covering the page, so the capability chain is exercised.
        return {vfio_user::dma_engine::kBar2Size,
                kRw | VFIO_REGION_INFO_FLAG_MMAP,
                {{0, vfio_user::dma_engine::kBar2Size}},
                engine_->bar2_fd()};
      case VFIO_PCI_CONFIG_REGION_INDEX:
        return {256, kRw, {}, -1};
      default:
        return {};
    }
  }
  ~EngineModel() override { stop_unmask_watch(); }

  vfio_irq_info irq(uint32_t index) const override {
    if (index == VFIO_PCI_INTX_IRQ_INDEX && intx_) {
      return {sizeof(vfio_irq_info),
              VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED, index, 1};
    }
    if (index != VFIO_PCI_MSIX_IRQ_INDEX || intx_) return {sizeof(vfio_irq_info), 0, index, 0};
    return {sizeof(vfio_irq_info), VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE, index, 1};
  }
  int unmask(uint32_t index, std::optional<int> eventfd) override {
    if (index != VFIO_PCI_INTX_IRQ_INDEX || !intx_) return -EINVAL;
    if (!eventfd) {
      engine_->set_intx_masked(false);
      return 0;
    }
    stop_unmask_watch();
    if (*eventfd < 0) return 0;
    unmask_fd_.reset(::dup(*eventfd));
    stop_.emplace(std::move(*EventFd::create(0)));
    unmask_watch_ = std::thread([this] {
      pollfd fds[] = {{unmask_fd_.get(), POLLIN, 0}, {stop_->fd(), POLLIN, 0}};
      while (::poll(fds, 2, -1) > 0 && !(fds[1].revents & POLLIN)) {
        uint64_t n;
        if (::read(unmask_fd_.get(), &n, sizeof(n)) == sizeof(n)) engine_->set_intx_masked(false);
      }
    });
    return 0;
  }
  int read(uint32_t index, uint64_t offset, std::span<uint8_t> data) override {
    if (index == VFIO_PCI_BAR0_REGION_INDEX) engine_->bar0_read(offset, data);
    if (index == VFIO_PCI_BAR2_REGION_INDEX) engine_->bar2_read(offset, data);
    if (index == VFIO_PCI_CONFIG_REGION_INDEX) engine_->config_read(offset, data);
    return 0;
  }
  int write(uint32_t index, uint64_t offset, std::span<const uint8_t> data) override {
    if (index == VFIO_PCI_BAR0_REGION_INDEX) {
      if (offset == vfio_user::dma_engine::kRegDoorbell) sync_dma();
      engine_->bar0_write(offset, data);
    }
    if (index == VFIO_PCI_BAR2_REGION_INDEX) engine_->bar2_write(offset, data);
    if (index == VFIO_PCI_CONFIG_REGION_INDEX) engine_->config_write(offset, data);
    return 0;
  }
  int set_irqs(uint32_t index, uint32_t start, std::span<const int> eventfds) override {
    uint32_t irq_index = intx_ ? VFIO_PCI_INTX_IRQ_INDEX : VFIO_PCI_MSIX_IRQ_INDEX;
    if (index != irq_index || start != 0 || eventfds.size() > 1) return -EINVAL;
    UniqueFd fd;
    if (!eventfds.empty() && eventfds[0] >= 0) fd.reset(::dup(eventfds[0]));
    if (intx_) {
      engine_->set_intx_eventfd(std::move(fd));
    } else {
      engine_->set_msi_eventfd(std::move(fd));
    }
    return 0;
  }
  int reset() override {
    resets++;
    engine_->reset();
    return 0;
  }

 private:
  void sync_dma() {
    engine_->dma().clear();
    for (const auto& w : fake_.dma_windows(cdev_)) {
      (void)engine_->dma().map(Iova(w.iova), w.last - w.iova + 1, w.read, w.write, UniqueFd(), 0);
    }
  }

  void stop_unmask_watch() {
    if (!unmask_watch_.joinable()) return;
    (void)stop_->signal();
    unmask_watch_.join();
  }

  iommu::testing::FakeKernel& fake_;
  std::string cdev_;
  bool with_reset_;
  bool intx_;
  std::unique_ptr<vfio_user::DmaEngine> engine_;
  UniqueFd unmask_fd_;
  std::optional<EventFd> stop_;
  std::thread unmask_watch_;
};

// A directory standing in for /sys: class/vfio-dev/vfioN/device/iommu_group and
// bus/pci/devices/NAME/iommu_group links to kernel/iommu_groups/G.
class FakeSysfs {
 public:
  FakeSysfs() {
    root_ = std::filesystem::temp_directory_path() /
            ("ioasis-sysfs-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    std::filesystem::create_directories(root_);
  }
  ~FakeSysfs() {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  FakeSysfs(const FakeSysfs&) = delete;
  FakeSysfs& operator=(const FakeSysfs&) = delete;

  // Declares vfio`n` (its cdev) and PCI device `pci_name` in IOMMU group `group`.
  void add(int n, const std::string& pci_name, int group) {
    std::string target = "../../../../kernel/iommu_groups/" + std::to_string(group);
    auto cdev_dir = root_ / "class/vfio-dev" / ("vfio" + std::to_string(n)) / "device";
    std::filesystem::create_directories(cdev_dir);
    std::filesystem::create_directory_symlink(target, cdev_dir / "iommu_group");
    auto pci_dir = root_ / "bus/pci/devices" / pci_name;
    std::filesystem::create_directories(pci_dir);
    std::filesystem::create_directory_symlink(target, pci_dir / "iommu_group");
  }
  std::string root() const { return root_.string(); }
  std::string pci_path(const std::string& pci_name) const {
    return (root_ / "bus/pci/devices" / pci_name).string();
  }

 private:
  static int& counter() {
    static int n = 0;
    return n;
  }
  std::filesystem::path root_;
};

}  // namespace ioasis::devices::testing
