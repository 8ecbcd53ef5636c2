// Passed-through PCI functions: vfio-user devices, kernel VFIO devices (cdev + iommufd, group +
// type1), and the host-managed address spaces they may join instead of guest-ram.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "devices/vfio/kernel_vfio_device.h"
#include "devices/vfio/vfio_pci_device.h"
#include "devices/vfio/vfio_user_client.h"
#include "devices/vfio/vfio_user_dma_backend.h"
#include "vmm/layout.h"
#include "vmm/vm.h"

namespace ioasis {

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

Result<devices::PciAddress> Vm::add_passthrough(
    std::shared_ptr<devices::VfioDeviceTransport> transport, PassthroughSpec spec) {
  devices::VfioPciOptions options;
  options.io = &io_;
  options.mapper = device_slots_.get();
  options.on_dma_fault = std::move(spec.on_dma_fault);
  IOASIS_ASSIGN_OR_RETURN(std::shared_ptr<devices::VfioPciDevice> device,
                          devices::VfioPciDevice::create(spec.name, std::move(transport),
                                                         *interrupts_, std::move(options)));
  IOASIS_ASSIGN_OR_RETURN(devices::PciAddress address, pci_->add_device(device));
  if (!device->msix() && device->intx_pin()) {
    uint32_t gsi = layout::pci_intx_gsi(address.device, device->intx_pin() - 1u);
    IOASIS_TRY(device->connect_intx(*interrupts_, gsi));
  }
  if (spec.iommu) {
    // The guest attaches it through the virtio-iommu; until then it can reach nothing.
    IOASIS_TRY(iommu_endpoints_->add(address.bdf(), spec.dma));
  } else {
    IOASIS_ASSIGN_OR_RETURN(iommu::IoasId ioas, initial_ioas(spec.ioas));
    IOASIS_TRY(ioasids_->attach(spec.dma, ioas));
  }
  passthrough_.push_back(device);
  devices_.push_back({spec.id, spec.kind, address.to_string(), spec.iommu, "", spec.dma,
                      [device] { return device->failure(); }});
  return address;
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

    PassthroughSpec spec{id, "vfio-user", "vfio-user:" + u.socket, dma, u.iommu, u.ioas, {}};
    // The error IRQ says a DMA failed but not where or why; behind the virtio-iommu the guest
    // hears of it as a fault event of unknown reason for the device's endpoint.
    std::weak_ptr<devices::virtio_iommu::IommuEngine> engine;
    if (u.iommu) engine = viommu_;
    spec.on_dma_fault = [this, engine, dma, id] {
      iommu::DmaFault fault{Iova(0), iommu::Access::kRead, iommu::FaultReason::kUnknown};
      if (auto e = engine.lock()) e->report_fault(dma, fault);
      if (fault_observer_) fault_observer_(id, fault.to_string());
    };
    auto address = add_passthrough(client, std::move(spec));
    if (!address) return context(std::move(address).error());
    spdlog::info("{} (vfio-user {}) at PCI {}{}{}", id, u.socket, address->to_string(),
                 group ? fmt::format(", isolation group {}", group->value) : "",
                 u.iommu ? " behind the virtio-iommu" : "");
  }
  return {};
}

Result<void> Vm::create_kernel_devices() {
  for (size_t i = 0; i < config_.kernel_devices.size(); ++i) {
    const KernelDeviceConfig& k = config_.kernel_devices[i];
    std::string id = config_.kernel_device_id(i);
    auto context = [&](Error e) { return e.context(fmt::format("--device path={}", k.path)); };

    if (!kernel_vfio_) {
      iommu::KernelIo& io = host_.io ? *host_.io : iommu::KernelIo::system();
      kernel_vfio_ = std::make_shared<devices::KernelVfio>(io, *ioasids_, host_.vfio);
    }
    auto opened = kernel_vfio_->open(k.path, id);
    if (!opened) return context(std::move(opened).error());
    // Its error IRQ would report PCIe errors, not DMA faults: those the kernel IOMMU keeps.
    auto address = add_passthrough(
        opened->device, {id, "vfio", "vfio:" + k.path, opened->dma, k.iommu, k.ioas, {}});
    if (!address) return context(std::move(address).error());
    spdlog::info("{} (vfio {}) at PCI {}, IOMMU group {}{}", id, k.path, address->to_string(),
                 opened->kernel_group, k.iommu ? " behind the virtio-iommu" : "");
  }
  return {};
}

}  // namespace ioasis
