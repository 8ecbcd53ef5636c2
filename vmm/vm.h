// One virtual machine: KVM objects, guest RAM, the irqchip, buses and devices, firmware tables,
// the loaded kernel and the vCPU threads, assembled from a VmConfig. Device work runs on the
// control loop (a Boost.Asio io_context) that the owner (Vmm) runs; every method is called there.
#pragma once

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "devices/bus/bus.h"
#include "devices/legacy/serial.h"
#include "devices/legacy/serial_output.h"
#include "devices/pci/pci_root.h"
#include "devices/vfio/kernel_vfio_device.h"
#include "devices/virtio/endpoints.h"
#include "devices/virtio/ioevents.h"
#include "devices/virtio/iommu_engine.h"
#include "devices/virtio/virtio_pci.h"
#include "iommu/ioasid_context.h"
#include "vmm/acpi/acpi.h"
#include "vmm/boot/loader.h"
#include "vmm/config/vm_config.h"
#include "vmm/device_slots.h"
#include "vmm/interrupts.h"
#include "vmm/kvm/kvm.h"
#include "vmm/memory/guest_memory.h"
#include "vmm/vcpu.h"
#include "vmm/vm_exit.h"

namespace ioasis::devices {
class VfioDeviceTransport;
}  // namespace ioasis::devices

namespace ioasis {

// A device of the running VM, as the API lists it.
struct DeviceRecord {
  std::string id;
  std::string kind;  // "serial", "virtio-blk", "virtio-iommu", "vfio-user", ...
  std::string bdf;   // "00:03.0" for PCI functions
  bool iommu = false;
  std::string failure;
  // Its place in the IOASID context, for devices that do DMA.
  std::optional<iommu::DeviceId> dma_device;
  // For devices backed by a peer: why the device failed, if it has.
  std::function<std::optional<Error>()> health;
};

// The host kernel interfaces a VM uses besides KVM: where --device functions are opened. Tests
// put the FAKE kernel of iommu/testing/fake_kernel.h and a scratch sysfs tree here.
struct HostKernel {
  iommu::KernelIo* io = nullptr;  // the real kernel when null
  devices::KernelVfioOptions vfio;
};

class Vm {
 public:
  // Called once, from whichever thread saw it first, when the VM stops by itself (power-off,
  // reset, debug exit, a vCPU error) or by request_exit().
  using ExitHandler = std::function<void(const VmExit&)>;
  // A device's DMA hit an address its address space does not map (device id, what happened).
  // Called on the control loop.
  using FaultObserver = std::function<void(const std::string& device, const std::string& what)>;

  // Builds the whole machine; any bad input (config, kernel, initramfs) is an error here, before
  // a vCPU runs.
  static Result<std::unique_ptr<Vm>> create(const VmConfig& config, boost::asio::io_context& io,
                                            ExitHandler on_exit, HostKernel host = {});
  ~Vm();

  // Starts the vCPU threads.
  void start();
  // Stops and joins the vCPU threads (after an exit, or to tear the VM down).
  void stop();
  // Parks every vCPU outside KVM_RUN; resume() lets them go on.
  void pause();
  void resume();
  void set_fault_observer(FaultObserver observer) { fault_observer_ = std::move(observer); }
  // Signals the ACPI power button: a guest that honours it powers off by itself.
  void press_power_button();
  // Asks the VM to stop; safe from any thread.
  void request_exit(VmExit exit) { exit_.request(std::move(exit)); }
  std::optional<VmExit> exit_reason() const { return exit_.get(); }

  boost::asio::io_context& io() { return io_; }
  const GuestMemory& memory() const { return *memory_; }
  const VmConfig& config() const { return config_; }
  const std::vector<DeviceRecord>& devices() const { return devices_; }

  // The VM's I/O address spaces: `guest-ram` (IOVA = GPA over all RAM) and, through the
  // virtio-iommu, the guest's domains.
  iommu::IoasidContext& ioasids() { return *ioasids_; }
  iommu::IoasId guest_ram_ioas() const { return guest_ram_ioas_; }
  // Devices behind the virtio-iommu by endpoint ID (= BDF), and where their DMA faults go.
  devices::virtio::IommuEndpoints& iommu_endpoints() { return *iommu_endpoints_; }

 private:
  Vm(const VmConfig& config, boost::asio::io_context& io, ExitHandler on_exit, HostKernel host);

  Result<void> create_kvm_vm();
  Result<void> create_memory();
  Result<void> create_legacy_devices();
  Result<void> create_serial();
  Result<void> create_pci(std::shared_ptr<devices::BusDevice> reset_control);
  Result<void> create_dma();
  Result<void> create_disks();
  // --ioas address spaces and --user-device functions (vm_passthrough.cc).
  Result<void> create_address_spaces();
  Result<void> create_user_devices();
  // --device functions held by the host kernel's VFIO driver (vm_passthrough.cc).
  Result<void> create_kernel_devices();
  // What placing an opened passthrough function needs to know about it.
  struct PassthroughSpec {
    std::string id;
    std::string kind;  // "vfio-user", "vfio"
    std::string name;  // for log lines: "vfio-user:/run/dma.sock"
    iommu::DeviceId dma;
    bool iommu = false;
    std::string ioas;
    std::function<void()> on_dma_fault;
  };
  // Makes the PCI function over an opened transport whose device has joined the context, wires
  // INTx for a function without MSI-X, and gives it its first address space (or the vIOMMU).
  Result<devices::PciAddress> add_passthrough(
      std::shared_ptr<devices::VfioDeviceTransport> transport, PassthroughSpec spec);
  // Where a device that is not behind the virtio-iommu starts: a named address space or guest-ram.
  Result<iommu::IoasId> initial_ioas(const std::string& name) const;
  // The virtio-iommu function, placed before the devices it translates for.
  Result<void> create_viommu();
  // Hands the endpoints registered while devices were built to the virtio-iommu.
  Result<void> add_viommu_endpoints();
  // Joins `name` to the IOASID context, wraps `device` in a virtio-pci function and places it on
  // the root bus. Outside the vIOMMU the device uses guest-ram; behind it, it stays detached
  // until the guest attaches its endpoint.
  Result<devices::PciAddress> add_virtio_device(
      std::shared_ptr<devices::virtio::VirtioDevice> device, const std::string& name,
      const std::string& kind, bool behind_iommu);
  std::optional<acpi::ViotConfig> viot_config() const;
  uint64_t mmio64_start() const;
  Result<void> write_acpi_tables();
  Result<void> load_kernel();
  Result<void> create_vcpus();
  void watch_stdin();
  void read_stdin();

  VmConfig config_;
  boost::asio::io_context& io_;
  HostKernel host_;
  ExitLatch exit_;

  std::optional<kvm::System> kvm_;
  std::optional<kvm::Vm> vm_;
  std::optional<GuestMemory> memory_;
  std::unique_ptr<KvmInterrupts> interrupts_;
  // Memory slots for passthrough BARs mapped into the guest.
  std::shared_ptr<KvmDeviceSlots> device_slots_;
  // Declared before the devices that hold DMA views and doorbells, so they go first.
  std::unique_ptr<iommu::IoasidContext> ioasids_;
  iommu::IoasId guest_ram_ioas_;
  std::shared_ptr<devices::virtio::IommuEndpoints> iommu_endpoints_;
  // The guest's domains; after the context, so that it goes first.
  std::shared_ptr<devices::virtio_iommu::IommuEngine> viommu_;
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
  std::vector<DeviceRecord> devices_;
  std::map<std::string, iommu::IoasId> named_ioas_;
  std::shared_ptr<iommu::DmaBackend> vfio_user_backend_;
  std::shared_ptr<devices::KernelVfio> kernel_vfio_;  // opened with the first --device
  std::vector<std::shared_ptr<devices::PciDevice>> passthrough_;
  FaultObserver fault_observer_;

  std::unique_ptr<boost::asio::posix::stream_descriptor> stdin_;
  std::array<uint8_t, 256> stdin_buf_{};
};

}  // namespace ioasis
