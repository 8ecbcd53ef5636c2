// Passed-through PCI functions: vfio-user devices, and the host-managed address spaces they may
// join instead of guest-ram. Kernel VFIO devices (cdev + iommufd, group + type1) would join the
// same way through their own transport and DMA backend; this host has no /dev/vfio.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "devices/vfio/vfio_pci_device.h"
#include "devices/vfio/vfio_user_client.h"
#include "devices/vfio/vfio_user_dma_backend.h"
#include "vmm/vm.h"

namespace ioasis {

namespace {
// PCI INTx lands on IOAPIC pins 16-19, above the ISA interrupts, as on a PC chipset.
constexpr uint32_t kGsiPciIntxBase = 16;
}  // namespace

Result<void> Vm::create_address_spaces() {
  for (const std::string& name : config_.address_spaces) {
    IOASIS_ASSIGN_OR_RETURN(iommu::IoasId id,
                            ioasids_->create_ioas(iommu::IoasKind::kHostManaged, name));
    named_ioas_.emplace(name, id);
  }
  return {};
}

Result<iommu::IoasId> Vm::initial_ioas(const std::string& name) const {
  if (name.empty()) return guest_ram_ioas_;
  auto it = named_ioas_.find(name);
  if (it == named_ioas_.end())
    return Error(Errc::kNotFound, fmt::format("no address space '{}'", name));
  return it->second;
}

Result<void> Vm::create_user_devices() {
  for (size_t i = 0; i < config_.user_devices.size(); ++i) {
    const UserDeviceConfig& u = config_.user_devices[i];
    std::string id = config_.user_device_id(i);
    auto context = [&](Error e) {
      return e.context(fmt::format("--user-device socket={}", u.socket));
    };

    auto connected = devices::vfio_user::VfioUserClient::connect(u.socket);
    if (!connected) return context(std::move(connected).error());
    std::shared_ptr<devices::vfio_user::VfioUserClient> client = std::move(*connected);
    auto declared = client->isolation_group();
    if (!declared) return context(std::move(declared).error());
    std::optional<iommu::GroupId> group;
    if (u.group) {
      group = iommu::GroupId{*u.group};
    } else if (*declared) {
      group = iommu::GroupId{**declared};
    }

    if (!vfio_user_backend_)
      vfio_user_backend_ = std::make_shared<devices::vfio_user::VfioUserDmaBackend>();
    auto* backend = static_cast<devices::vfio_user::VfioUserDmaBackend*>(vfio_user_backend_.get());
    IOASIS_ASSIGN_OR_RETURN(iommu::DeviceId dma, ioasids_->join({id, group, vfio_user_backend_}));
    backend->add_device(dma, client);

    devices::VfioPciOptions options;
    options.io = &io_;
    // The error IRQ says a DMA failed but not where or why; behind the virtio-iommu the guest
    // hears of it as a fault event of unknown reason for the device's endpoint.
    std::weak_ptr<devices::virtio_iommu::IommuEngine> engine;
    if (u.iommu) engine = viommu_;
    options.on_dma_fault = [this, engine, dma, id] {
      iommu::DmaFault fault{Iova(0), iommu::Access::kRead, iommu::FaultReason::kUnknown};
      if (auto e = engine.lock()) e->report_fault(dma, fault);
      if (fault_observer_) fault_observer_(id, fault.to_string());
    };
    auto created = devices::VfioPciDevice::create("vfio-user:" + u.socket, client, *interrupts_,
                                                  std::move(options));
    if (!created) return context(std::move(created).error());
    std::shared_ptr<devices::VfioPciDevice> device = std::move(*created);
    IOASIS_ASSIGN_OR_RETURN(devices::PciAddress address, pci_->add_device(device));
    if (!device->msix() && device->intx_pin()) {
      // The usual swizzle of a slot's four pins over four IOAPIC pins above the ISA ones.
      uint32_t gsi = kGsiPciIntxBase + (address.device + device->intx_pin() - 1u) % 4;
      if (auto r = device->connect_intx(*interrupts_, gsi); !r)
        return context(std::move(r).error());
    }

    if (u.iommu) {
      // The guest attaches it through the virtio-iommu; until then it can reach nothing.
      IOASIS_TRY(iommu_endpoints_->add(address.bdf(), dma));
    } else {
      IOASIS_ASSIGN_OR_RETURN(iommu::IoasId ioas, initial_ioas(u.ioas));
      if (auto r = ioasids_->attach(dma, ioas); !r) return context(std::move(r).error());
    }
    spdlog::info("{} (vfio-user {}) at PCI {}{}{}", id, u.socket, address.to_string(),
                 group ? fmt::format(", isolation group {}", group->value) : "",
                 u.iommu ? " behind the virtio-iommu" : "");
    passthrough_.push_back(device);
    devices_.push_back({id, "vfio-user", address.to_string(), u.iommu, "", dma,
                        [device] { return device->failure(); }});
  }
  return {};
}

}  // namespace ioasis
