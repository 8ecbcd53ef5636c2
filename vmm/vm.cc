#include "vmm/vm.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>

#include "devices/legacy/debug_exit.h"
#include "devices/legacy/reset.h"
#include "devices/pci/config_access.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/iommu_device.h"
#include "iommu/backends/software.h"
#include "iommu/dma_view.h"
#include "vmm/acpi/acpi.h"
#include "vmm/layout.h"
#include "vmm/x86/boot_cpu.h"
#include "vmm/x86/cpuid.h"

namespace ioasis {

namespace asio = boost::asio;

namespace {

// Where KVM puts the three pages of its real-mode TSS and the identity-map page on Intel hosts:
// just below the BIOS area at the top of the 32-bit space, away from RAM and MMIO windows.
constexpr uint64_t kKvmTssAddress = 0xfffbd000;
// Slots for device memory (passthrough BARs); RAM uses the ones below.
constexpr uint32_t kFirstDeviceSlot = 16;
constexpr uint32_t kDeviceSlots = 240;
constexpr uint64_t kKvmIdentityMapAddress = 0xfffbc000;

// LAPIC LVT registers (Intel SDM vol. 3A 10.5.1): LINT0 takes the PIC's ExtINT, LINT1 the NMI,
// as firmware leaves them for an operating system.
constexpr size_t kApicLvtLint0 = 0x350;
constexpr size_t kApicLvtLint1 = 0x360;
constexpr uint32_t kApicDeliveryExtInt = 0x700;
constexpr uint32_t kApicDeliveryNmi = 0x400;

// Doorbells on KVM_IOEVENTFD; each registration deassigns itself.
class KvmIoEventRegistration final : public devices::IoEventRegistration {
 public:
  KvmIoEventRegistration(kvm::Vm& vm, int eventfd, uint64_t addr, uint32_t len)
      : vm_(vm), eventfd_(eventfd), addr_(addr), len_(len) {}
  ~KvmIoEventRegistration() override {
    if (auto r = vm_.ioeventfd(eventfd_, addr_, len_, false, std::nullopt, false); !r) {
      spdlog::warn("removing the ioeventfd at {:#x}: {}", addr_, r.error().message());
    }
  }

 private:
  kvm::Vm& vm_;
  int eventfd_;
  uint64_t addr_;
  uint32_t len_;
};

class KvmIoEvents final : public devices::IoEvents {
 public:
  explicit KvmIoEvents(kvm::Vm& vm) : vm_(vm) {}
  Result<std::unique_ptr<devices::IoEventRegistration>> add_mmio(int eventfd, uint64_t addr,
                                                                 uint32_t len) override {
    IOASIS_TRY(vm_.ioeventfd(eventfd, addr, len, false, std::nullopt, true));
    return std::unique_ptr<devices::IoEventRegistration>(
        std::make_unique<KvmIoEventRegistration>(vm_, eventfd, addr, len));
  }

 private:
  kvm::Vm& vm_;
};

}  // namespace

Vm::Vm(const VmConfig& config, asio::io_context& io, ExitHandler on_exit, HostKernel host)
    : config_(config), io_(io), host_(std::move(host)), exit_(std::move(on_exit)) {}

Vm::~Vm() {
  stop();
  // The config-space devices on the buses hold the root, and the root takes its BARs off the
  // buses when it goes: drop it here, while both buses still exist.
  (void)pio_.remove(layout::kPortPciConfig);
  (void)mmio_.remove(layout::kPciEcamStart);
  pci_.reset();
  if (serial_socket_) serial_socket_->stop();
}

Result<std::unique_ptr<Vm>> Vm::create(const VmConfig& config, asio::io_context& io,
                                       ExitHandler on_exit, HostKernel host) {
  IOASIS_TRY(config.validate());
  std::unique_ptr<Vm> vm(new Vm(config, io, std::move(on_exit), std::move(host)));
  IOASIS_TRY(vm->create_kvm_vm());
  IOASIS_TRY(vm->create_memory());
  IOASIS_TRY(vm->create_dma());
  IOASIS_TRY(vm->create_legacy_devices());
  if (config.wants_iommu()) IOASIS_TRY(vm->create_viommu());
  IOASIS_TRY(vm->create_address_spaces());
  IOASIS_TRY(vm->create_user_devices());
  IOASIS_TRY(vm->create_kernel_devices());
  IOASIS_TRY(vm->create_disks());
  if (vm->viommu_) IOASIS_TRY(vm->add_viommu_endpoints());
  IOASIS_TRY(vm->write_acpi_tables());
  IOASIS_TRY(vm->load_kernel());
  IOASIS_TRY(vm->create_vcpus());
  return vm;
}

Result<void> Vm::create_kvm_vm() {
  IOASIS_ASSIGN_OR_RETURN(kvm::System system, kvm::System::open());
  for (auto [cap, name] : {std::pair{KVM_CAP_IRQCHIP, "IRQCHIP"},
                           {KVM_CAP_IRQ_ROUTING, "IRQ_ROUTING"},
                           {KVM_CAP_IRQFD, "IRQFD"},
                           {KVM_CAP_IOEVENTFD, "IOEVENTFD"},
                           {KVM_CAP_IMMEDIATE_EXIT, "IMMEDIATE_EXIT"}}) {
    IOASIS_ASSIGN_OR_RETURN(int have, system.check_extension(cap));
    if (!have) return Error(Errc::kUnsupported, fmt::format("this KVM lacks KVM_CAP_{}", name));
  }
  IOASIS_ASSIGN_OR_RETURN(kvm::Vm vm, system.create_vm());
  IOASIS_TRY(vm.set_tss_address(kKvmTssAddress));
  IOASIS_TRY(vm.set_identity_map_address(kKvmIdentityMapAddress));
  IOASIS_TRY(vm.create_irqchip());
  // The PIT only helps guests calibrate their clocks; run without it where KVM refuses.
  if (auto r = vm.create_pit(); !r) spdlog::warn("no in-kernel PIT: {}", r.error().message());
  kvm_.emplace(std::move(system));
  vm_.emplace(std::move(vm));
  interrupts_ = std::make_unique<KvmInterrupts>(*vm_);
  return interrupts_->init();
}

Result<void> Vm::create_memory() {
  IOASIS_ASSIGN_OR_RETURN(GuestMemory memory, GuestMemory::create(config_.memory_size));
  uint32_t slot = 0;
  for (const RamRegion& r : memory.regions()) {
    IOASIS_TRY(vm_->set_memory_slot({slot++, r.gpa, r.size, r.hva}));
  }
  // 256 slots in all: well inside the 509 the oldest supported kernels give a VM.
  device_slots_ = KvmDeviceSlots::create(*vm_, kFirstDeviceSlot, kDeviceSlots);
  memory_.emplace(std::move(memory));
  return {};
}

Result<void> Vm::create_legacy_devices() {
  IOASIS_TRY(create_serial());
  auto on_reset = [this] { request_exit({VmExit::Kind::kReset, 0, "guest requested a reset"}); };
  auto debug_exit = std::make_shared<devices::DebugExit>([this](uint32_t value) {
    request_exit({VmExit::Kind::kDebugExit, static_cast<int>(value),
                  fmt::format("guest wrote {:#x} to the debug-exit port", value)});
  });
  IOASIS_TRY(pio_.insert(debug_exit, layout::kPortDebugExit, devices::DebugExit::kPortCount));
  IOASIS_TRY(pio_.insert(std::make_shared<devices::I8042>(on_reset), layout::kPortI8042,
                         devices::I8042::kPortCount));
  IOASIS_TRY(pio_.insert(std::make_shared<devices::SleepControl>([this] {
                           request_exit({VmExit::Kind::kPowerOff, 0, "guest powered off"});
                         }),
                         layout::kPortSleepControl, devices::SleepControl::kPortCount));
  return create_pci(std::make_shared<devices::ResetControl>(on_reset));
}

Result<void> Vm::create_pci(std::shared_ptr<devices::BusDevice> reset_control) {
  devices::PciWindows windows;
  windows.mmio64_start = mmio64_start();
  windows.mmio64_size = layout::kPciMmio64Size;
  pci_ = std::make_shared<devices::PciRoot>(mmio_, pio_, windows);
  // 0xcf9 (reset control) sits inside the config-address dword; the config port device owns it.
  IOASIS_TRY(pio_.insert(std::make_shared<devices::PciConfigIo>(pci_, std::move(reset_control)),
                         layout::kPortPciConfig, devices::PciConfigIo::kPortCount));
  auto ecam = std::make_shared<devices::PciConfigMmio>(
      pci_, layout::kPciEcamSize / devices::PciConfigMmio::kBusSize);
  return mmio_.insert(ecam, layout::kPciEcamStart, ecam->size());
}

Result<void> Vm::create_dma() {
  iommu::ContextOptions options;
  // No address space may map over the MSI doorbell: DMA there is an interrupt, not memory.
  options.reserved.push_back({Iova(layout::kMsiStart), Iova(layout::kMsiEnd)});
  ioasids_ = std::make_unique<iommu::IoasidContext>(std::move(options));
  IOASIS_ASSIGN_OR_RETURN(guest_ram_ioas_,
                          ioasids_->create_ioas(iommu::IoasKind::kGuestRam, "guest-ram"));
  for (const RamRegion& r : memory_->regions()) {
    iommu::HostRange host{r.hva, r.size, memory_->fd(), r.fd_offset};
    IOASIS_TRY(ioasids_->map(guest_ram_ioas_, Iova(r.gpa.value), host, iommu::Perm::kReadWrite));
  }
  iommu_endpoints_ = std::make_shared<devices::virtio::IommuEndpoints>();
  ioevents_ = std::make_unique<KvmIoEvents>(*vm_);
  return {};
}

Result<devices::PciAddress> Vm::add_virtio_device(
    std::shared_ptr<devices::virtio::VirtioDevice> device, const std::string& name,
    const std::string& kind, bool behind_iommu) {
  IOASIS_ASSIGN_OR_RETURN(
      iommu::DeviceId id,
      ioasids_->join({name, std::nullopt, std::make_shared<iommu::SoftwareBackend>()}));
  if (!behind_iommu) IOASIS_TRY(ioasids_->attach(id, guest_ram_ioas_));
  IOASIS_ASSIGN_OR_RETURN(auto dma, ioasids_->dma_view(id));
  devices::virtio::VirtioPciOptions options;
  options.interrupts = interrupts_.get();
  options.dma = std::move(dma);
  options.behind_iommu = behind_iommu;
  options.ioevents = ioevents_.get();
  options.io = &io_;
  IOASIS_ASSIGN_OR_RETURN(auto transport,
                          devices::virtio::VirtioPci::create(device, std::move(options)));
  IOASIS_ASSIGN_OR_RETURN(devices::PciAddress address, pci_->add_device(transport));
  if (behind_iommu) {
    uint32_t endpoint = address.bdf();
    IOASIS_TRY(iommu_endpoints_->add(endpoint, id));
    transport->set_fault_reporter(
        [this, endpoints = iommu_endpoints_, endpoint, name](const iommu::DmaFault& f) {
          endpoints->report_fault(endpoint, f);
          if (fault_observer_) fault_observer_(name, f.to_string());
        });
  }
  spdlog::info("{} at PCI {}{}", name, address.to_string(),
               behind_iommu ? " behind the virtio-iommu" : "");
  virtio_devices_.push_back(std::move(transport));
  devices_.push_back({name, kind, address.to_string(), behind_iommu, "", id, nullptr});
  return address;
}

Result<void> Vm::create_disks() {
  for (size_t i = 0; i < config_.disks.size(); ++i) {
    const DiskConfig& d = config_.disks[i];
    auto blk = devices::virtio::Blk::open({.path = d.path, .readonly = d.readonly, .id = d.id});
    if (!blk) return Error(blk.error()).context(fmt::format("--disk path={}", d.path));
    IOASIS_TRY(add_virtio_device(*blk, config_.disk_id(i), "virtio-blk", d.iommu));
  }
  return {};
}

Result<void> Vm::create_viommu() {
  std::vector<devices::virtio_iommu::RamSlice> slices;
  for (const RamRegion& r : memory_->regions()) {
    slices.push_back({r.gpa, iommu::HostRange{r.hva, r.size, memory_->fd(), r.fd_offset}});
  }
  viommu_ = std::make_shared<devices::virtio_iommu::IommuEngine>(
      *ioasids_, guest_ram_ioas_, devices::virtio_iommu::GuestRamMap(std::move(slices)));
  auto device = std::make_shared<devices::virtio_iommu::IommuDevice>(viommu_);
  IOASIS_ASSIGN_OR_RETURN(devices::PciAddress address,
                          add_virtio_device(device, "viommu0", "virtio-iommu", false));
  viommu_address_ = address;
  // Faults arrive on the faulting device's thread; the event queue is filled on the control
  // loop, under the virtio-iommu transport's lock like every other queue access.
  std::weak_ptr<devices::virtio::VirtioPci> transport = virtio_devices_.back();
  viommu_->set_fault_notifier([this, transport] {
    boost::asio::post(io_, [transport] {
      if (auto t = transport.lock()) t->process_queue(devices::virtio_iommu::kEventQueue);
    });
  });
  iommu_endpoints_->set_fault_handler(
      [engine = std::weak_ptr(viommu_)](uint32_t endpoint, const iommu::DmaFault& fault) {
        if (auto e = engine.lock()) e->report_fault(endpoint, fault);
      });
  return {};
}

Result<void> Vm::add_viommu_endpoints() {
  for (uint32_t endpoint : iommu_endpoints_->endpoints()) {
    IOASIS_TRY(viommu_->add_endpoint(endpoint, *iommu_endpoints_->find(endpoint)));
  }
  return {};
}

std::optional<acpi::ViotConfig> Vm::viot_config() const {
  if (!viommu_address_) return std::nullopt;
  acpi::ViotConfig viot;
  viot.iommu = {0, viommu_address_->bdf()};
  // Consecutive BDFs share one PCI range node.
  for (uint32_t endpoint : iommu_endpoints_->endpoints()) {
    auto bdf = static_cast<uint16_t>(endpoint);
    if (!viot.endpoints.empty() && viot.endpoints.back().bdf_end + 1 == bdf) {
      viot.endpoints.back().bdf_end = bdf;
    } else {
      viot.endpoints.push_back({0, bdf, bdf});
    }
  }
  return viot;
}

uint64_t Vm::mmio64_start() const {
  // The 64-bit window starts above RAM, 1 GiB aligned, never below 4 GiB.
  uint64_t end = std::max(memory_->end().value, layout::k4GiB);
  return (end + (1ull << 30) - 1) & ~((1ull << 30) - 1);
}

Result<void> Vm::create_serial() {
  const SerialConfig& sc = config_.serial;
  switch (sc.mode) {
    case SerialConfig::Mode::kOff:
      return {};
    case SerialConfig::Mode::kStdio: {
      IOASIS_ASSIGN_OR_RETURN(auto out, devices::FdSerialOutput::for_stdout());
      serial_output_ = std::move(out);
      break;
    }
    case SerialConfig::Mode::kFile: {
      IOASIS_ASSIGN_OR_RETURN(auto out, devices::FdSerialOutput::open_file(sc.path));
      serial_output_ = std::move(out);
      break;
    }
    case SerialConfig::Mode::kSocket: {
      // The handler runs on the socket thread after serial_ exists; it never outlives the VM.
      IOASIS_ASSIGN_OR_RETURN(auto server,
                              devices::SerialSocketServer::listen(sc.path, [this](auto bytes) {
                                if (serial_) serial_->enqueue_input(bytes);
                              }));
      serial_socket_ = server.get();
      serial_output_ = std::move(server);
      break;
    }
  }
  serial_ =
      std::make_shared<devices::Serial>(interrupts_->legacy_line(layout::kIrqCom1), serial_output_);
  IOASIS_TRY(pio_.insert(serial_, layout::kPortCom1, 8));
  devices_.push_back({"serial0", "serial", "", false, "", std::nullopt, nullptr});
  if (serial_socket_) serial_socket_->start();
  return {};
}

Result<void> Vm::write_acpi_tables() {
  acpi::AcpiConfig ac;
  ac.num_cpus = config_.cpus;
  ac.power_button_gsi = layout::kGsiPowerButton;
  ac.pci_mmio64 = {mmio64_start(), layout::kPciMmio64Size};
  ac.viot = viot_config();
  IOASIS_ASSIGN_OR_RETURN(acpi::AcpiTables tables, acpi::build_acpi_tables(ac));
  IOASIS_TRY(memory_->write(tables.base, tables.bytes));
  rsdp_ = tables.rsdp;
  return {};
}

Result<void> Vm::load_kernel() {
  boot::BootConfig bc;
  IOASIS_ASSIGN_OR_RETURN(bc.kernel, boot::read_file(config_.kernel, config_.memory_size));
  bc.kernel_name = config_.kernel;
  if (config_.initramfs) {
    IOASIS_ASSIGN_OR_RETURN(bc.initramfs, boot::read_file(*config_.initramfs, config_.memory_size));
  }
  bc.cmdline = config_.cmdline;
  bc.rsdp = rsdp_;
  bc.memory_map = boot::memory_map(*memory_);
  IOASIS_ASSIGN_OR_RETURN(boot::BootEntry entry, boot::load_kernel(*memory_, bc));
  spdlog::info("loaded {} as {}, entry {:#x}", config_.kernel, boot::format_name(entry.format),
               entry.rip);
  entry_ = entry;
  return x86::write_boot_tables(*memory_);
}

Result<void> Vm::create_vcpus() {
  IOASIS_ASSIGN_OR_RETURN(auto supported, kvm_->supported_cpuid());
  IOASIS_ASSIGN_OR_RETURN(x86::CpuPolicy policy, x86::CpuPolicy::parse(config_.cpu_features));
  IOASIS_ASSIGN_OR_RETURN(auto cpuid, x86::apply_policy(std::move(supported), policy));
  for (uint32_t id = 0; id < config_.cpus; ++id) {
    IOASIS_ASSIGN_OR_RETURN(kvm::Vcpu vcpu, vm_->create_vcpu(id));
    IOASIS_TRY(vcpu.set_cpuid(x86::for_vcpu(cpuid, id, config_.cpus)));
    IOASIS_TRY(vcpu.set_msrs(x86::boot_msrs()));
    IOASIS_TRY(vcpu.set_fpu(x86::boot_fpu()));
    IOASIS_ASSIGN_OR_RETURN(kvm_lapic_state lapic, vcpu.get_lapic());
    auto set_lvt = [&](size_t reg, uint32_t delivery) {
      uint32_t v;
      std::memcpy(&v, lapic.regs + reg, 4);
      v = (v & ~0x700u) | delivery;
      std::memcpy(lapic.regs + reg, &v, 4);
    };
    set_lvt(kApicLvtLint0, kApicDeliveryExtInt);
    set_lvt(kApicLvtLint1, kApicDeliveryNmi);
    IOASIS_TRY(vcpu.set_lapic(lapic));
    if (id == 0) {
      // Only the boot CPU starts at the kernel; the others wait in the LAPIC for INIT/SIPI.
      IOASIS_ASSIGN_OR_RETURN(kvm_sregs sregs, vcpu.get_sregs());
      IOASIS_TRY(vcpu.set_sregs(x86::entry_sregs(
          sregs, entry_->long_mode ? x86::EntryMode::kLong64 : x86::EntryMode::kProtected32)));
      kvm_regs regs{};
      regs.rflags = 0x2;
      regs.rip = entry_->rip;
      regs.rsi = entry_->rsi;
      regs.rbx = entry_->rbx;
      regs.rsp = layout::kBootStack;
      IOASIS_TRY(vcpu.set_regs(regs));
    }
    vcpus_.push_back(std::make_unique<VcpuThread>(std::move(vcpu), pio_, mmio_, exit_));
  }
  return {};
}

void Vm::watch_stdin() {
  if (!serial_ || config_.serial.mode != SerialConfig::Mode::kStdio || !isatty(STDIN_FILENO))
    return;
  stdin_ = std::make_unique<asio::posix::stream_descriptor>(io_, ::dup(STDIN_FILENO));
  read_stdin();
}

void Vm::read_stdin() {
  stdin_->async_read_some(asio::buffer(stdin_buf_), [this](auto ec, size_t n) {
    if (ec) return;  // EOF, or the VM is going away: the console stays output-only
    serial_->enqueue_input(std::span<const uint8_t>(stdin_buf_.data(), n));
    read_stdin();
  });
}

void Vm::press_power_button() {
  // An edge on the GED's IOAPIC pin; the guest's _EVT notifies \_SB.PWRB.
  auto line = interrupts_->legacy_line(layout::kGsiPowerButton);
  line->set_level(true);
  line->set_level(false);
}

void Vm::start() {
  watch_stdin();
  for (auto& v : vcpus_) v->start();
}

void Vm::stop() {
  for (auto& v : vcpus_) v->stop();
  for (auto& v : vcpus_) v->join();
}

void Vm::pause() {
  for (auto& v : vcpus_) v->pause();
}

void Vm::resume() {
  for (auto& v : vcpus_) v->resume();
}

}  // namespace ioasis
