// One virtual machine: KVM objects, guest RAM, the irqchip, buses and devices, firmware tables,
// the loaded kernel and the vCPU threads, assembled from a VmConfig. The control loop (a
// Boost.Asio io_context) runs on the thread that calls run().
#pragma once

#include <boost/asio/io_context.hpp>
#include <memory>
#include <optional>
#include <vector>

#include "devices/bus/bus.h"
#include "devices/legacy/serial.h"
#include "devices/legacy/serial_output.h"
#include "devices/pci/pci_root.h"
#include "devices/virtio/endpoints.h"
#include "devices/virtio/ioevents.h"
#include "devices/virtio/virtio_pci.h"
#include "iommu/ioasid_context.h"
#include "vmm/acpi/acpi.h"
#include "vmm/boot/loader.h"
#include "vmm/config/vm_config.h"
#include "vmm/interrupts.h"
#include "vmm/kvm/kvm.h"
#include "vmm/memory/guest_memory.h"
#include "vmm/vcpu.h"
#include "vmm/vm_exit.h"

namespace ioasis {

class Vm {
 public:
  // Builds the whole machine; any bad input (config, kernel, initramfs) is an error here, before
  // a vCPU runs.
  static Result<std::unique_ptr<Vm>> create(const VmConfig& config);
  ~Vm();

  // Starts the vCPUs and runs the control loop until the VM stops; returns why it stopped.
  VmExit run();
  // Asks the VM to stop; safe from any thread.
  void request_exit(VmExit exit) { exit_.request(std::move(exit)); }

  boost::asio::io_context& io() { return io_; }
  const GuestMemory& memory() const { return *memory_; }

  // The VM's I/O address spaces: `guest-ram` (IOVA = GPA over all RAM) and, through the
  // virtio-iommu, the guest's domains.
  iommu::IoasidContext& ioasids() { return *ioasids_; }
  iommu::IoasId guest_ram_ioas() const { return guest_ram_ioas_; }
  // Devices behind the virtio-iommu by endpoint ID (= BDF), and where their DMA faults go.
  devices::virtio::IommuEndpoints& iommu_endpoints() { return *iommu_endpoints_; }

 private:
  explicit Vm(const VmConfig& config);

  Result<void> create_kvm_vm();
  Result<void> create_memory();
  Result<void> create_legacy_devices();
  Result<void> create_serial();
  Result<void> create_pci(std::shared_ptr<devices::BusDevice> reset_control);
  Result<void> create_dma();
  Result<void> create_disks();
  // Joins `name` to the IOASID context, wraps `device` in a virtio-pci function and places it on
  // the root bus. Outside the vIOMMU the device uses guest-ram; behind it, it stays detached
  // until the guest attaches its endpoint.
  Result<devices::PciAddress> add_virtio_device(
      std::shared_ptr<devices::virtio::VirtioDevice> device, const std::string& name,
      bool behind_iommu);
  std::optional<acpi::ViotConfig> viot_config() const;
  uint64_t mmio64_start() const;
  Result<void> write_acpi_tables();
  Result<void> load_kernel();
  Result<void> create_vcpus();
  void watch_stdin();

  VmConfig config_;
  boost::asio::io_context io_;
  ExitLatch exit_;

  std::optional<kvm::System> kvm_;
  std::optional<kvm::Vm> vm_;
  std::optional<GuestMemory> memory_;
  std::unique_ptr<KvmInterrupts> interrupts_;
  // Declared before the devices that hold DMA views and doorbells, so they go first.
  std::unique_ptr<iommu::IoasidContext> ioasids_;
  iommu::IoasId guest_ram_ioas_;
  std::shared_ptr<devices::virtio::IommuEndpoints> iommu_endpoints_;
  std::unique_ptr<devices::IoEvents> ioevents_;
  // Where the virtio-iommu sits once it exists; VIOT is emitted only then.
  std::optional<devices::PciAddress> viommu_address_;
  devices::Bus pio_{"pio"};
  devices::Bus mmio_{"mmio"};

  std::shared_ptr<devices::PciRoot> pci_;
  std::shared_ptr<devices::Serial> serial_;
  std::shared_ptr<devices::SerialOutput> serial_output_;
  devices::SerialSocketServer* serial_socket_ = nullptr;  // owned by serial_output_ when used
  std::vector<std::shared_ptr<devices::virtio::VirtioPci>> virtio_devices_;

  Gpa rsdp_;
  std::optional<boot::BootEntry> entry_;
  std::vector<std::unique_ptr<VcpuThread>> vcpus_;
};

}  // namespace ioasis
