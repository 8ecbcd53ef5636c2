#include "vmm/kvm/kvm.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/ioctl.h>

#include <cstring>
#include <optional>

namespace ioasis::kvm {

namespace {

// ioctl(2) retried on EINTR; every failure becomes an Error naming the request.
template <typename Arg>
Result<int> do_ioctl(int fd, unsigned long req, Arg arg, const char* what) {
  int r;
  do {
    r = ::ioctl(fd, req, arg);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return Error::from_errno(what);
  return r;
}

// Variable-length KVM structs (kvm_cpuid2, kvm_msrs, kvm_msr_list, kvm_irq_routing) end in a
// flexible array. Linux 6.1's uAPI declares those arrays with __DECLARE_FLEX_ARRAY, which in C++
// adds an empty struct member: sizeof and the array offset differ from the kernel's C layout, and
// so do the ioctl numbers that encode the size. We lay these structs out by their C header sizes
// and use request numbers built from them.
template <typename Entry>
class Flex {
 public:
  Flex(size_t header_size, size_t n)
      : header_size_(header_size), storage((header_size + n * sizeof(Entry) + 7) / 8, 0) {}
  void* get() { return storage.data(); }
  uint32_t& count() { return *reinterpret_cast<uint32_t*>(storage.data()); }
  Entry* entries() {
    return reinterpret_cast<Entry*>(reinterpret_cast<uint8_t*>(storage.data()) + header_size_);
  }

 private:
  size_t header_size_;
  std::vector<uint64_t> storage;
};

constexpr size_t kCpuid2Header = 8;      // nent, padding
constexpr size_t kMsrsHeader = 8;        // nmsrs, pad
constexpr size_t kMsrListHeader = 4;     // nmsrs
constexpr size_t kIrqRoutingHeader = 8;  // nr, flags
constexpr unsigned long kGetSupportedCpuid =
    _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x05, kCpuid2Header);
constexpr unsigned long kSetCpuid2 = _IOC(_IOC_WRITE, KVMIO, 0x90, kCpuid2Header);
constexpr unsigned long kGetMsrIndexList =
    _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x02, kMsrListHeader);
constexpr unsigned long kGetMsrs = _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x88, kMsrsHeader);
constexpr unsigned long kSetMsrs = _IOC(_IOC_WRITE, KVMIO, 0x89, kMsrsHeader);
constexpr unsigned long kSetGsiRouting = _IOC(_IOC_WRITE, KVMIO, 0x6a, kIrqRoutingHeader);

}  // namespace

Result<System> System::open(const char* path) {
  UniqueFd fd(::open(path, O_RDWR | O_CLOEXEC));
  if (!fd) return Error::from_errno(fmt::format("open {}", path));
  IOASIS_ASSIGN_OR_RETURN(int version,
                          do_ioctl(fd.get(), KVM_GET_API_VERSION, 0, "KVM_GET_API_VERSION"));
  if (version != KVM_API_VERSION) {
    return Error(Errc::kUnsupported,
                 fmt::format("KVM API version {} (need {})", version, KVM_API_VERSION));
  }
  IOASIS_ASSIGN_OR_RETURN(int run_size,
                          do_ioctl(fd.get(), KVM_GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE"));
  return System(std::move(fd), static_cast<size_t>(run_size));
}

Result<int> System::check_extension(long cap) const {
  return do_ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap, "KVM_CHECK_EXTENSION");
}

Result<std::vector<kvm_cpuid_entry2>> System::supported_cpuid() const {
  constexpr size_t kMax = 256;
  Flex<kvm_cpuid_entry2> buf(kCpuid2Header, kMax);
  buf.count() = kMax;
  IOASIS_TRY(do_ioctl(fd_.get(), kGetSupportedCpuid, buf.get(), "KVM_GET_SUPPORTED_CPUID"));
  return std::vector<kvm_cpuid_entry2>(buf.entries(), buf.entries() + buf.count());
}

Result<std::vector<uint32_t>> System::msr_index_list() const {
  constexpr size_t kMax = 1024;
  Flex<uint32_t> buf(kMsrListHeader, kMax);
  buf.count() = kMax;
  IOASIS_TRY(do_ioctl(fd_.get(), kGetMsrIndexList, buf.get(), "KVM_GET_MSR_INDEX_LIST"));
  return std::vector<uint32_t>(buf.entries(), buf.entries() + buf.count());
}

Result<Vm> System::create_vm() const {
  IOASIS_ASSIGN_OR_RETURN(int fd, do_ioctl(fd_.get(), KVM_CREATE_VM, 0, "KVM_CREATE_VM"));
  return Vm(UniqueFd(fd), run_size_);
}

Result<void> Vm::set_memory_slot(const MemorySlot& s) {
  kvm_userspace_memory_region region{};
  region.slot = s.slot;
  region.flags = s.readonly ? KVM_MEM_READONLY : 0;
  region.guest_phys_addr = s.gpa.value;
  region.memory_size = s.size;
  region.userspace_addr = s.hva.value;
  auto r = do_ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region, "KVM_SET_USER_MEMORY_REGION");
  if (!r)
    return std::move(r).error().context(
        fmt::format("slot {} at GPA {:#x}+{:#x}", s.slot, s.gpa.value, s.size));
  return {};
}

Result<void> Vm::remove_memory_slot(uint32_t slot) {
  kvm_userspace_memory_region region{};
  region.slot = slot;
  IOASIS_TRY(do_ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region,
                      "KVM_SET_USER_MEMORY_REGION (remove)"));
  return {};
}

Result<void> Vm::create_irqchip() {
  IOASIS_TRY(do_ioctl(fd_.get(), KVM_CREATE_IRQCHIP, 0, "KVM_CREATE_IRQCHIP"));
  return {};
}

Result<void> Vm::create_pit() {
  kvm_pit_config config{};
  config.flags = KVM_PIT_SPEAKER_DUMMY;
  IOASIS_TRY(do_ioctl(fd_.get(), KVM_CREATE_PIT2, &config, "KVM_CREATE_PIT2"));
  return {};
}

Result<void> Vm::set_tss_address(uint64_t addr) {
  IOASIS_TRY(
      do_ioctl(fd_.get(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(addr), "KVM_SET_TSS_ADDR"));
  return {};
}

Result<void> Vm::set_identity_map_address(uint64_t addr) {
  IOASIS_TRY(do_ioctl(fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, &addr, "KVM_SET_IDENTITY_MAP_ADDR"));
  return {};
}

Result<void> Vm::irq_line(uint32_t gsi, bool level) {
  kvm_irq_level irq{};
  irq.irq = gsi;
  irq.level = level ? 1 : 0;
  IOASIS_TRY(do_ioctl(fd_.get(), KVM_IRQ_LINE, &irq, "KVM_IRQ_LINE"));
  return {};
}

Result<void> Vm::signal_msi(uint64_t address, uint32_t data) {
  kvm_msi msi{};
  msi.address_lo = static_cast<uint32_t>(address);
  msi.address_hi = static_cast<uint32_t>(address >> 32);
  msi.data = data;
  IOASIS_TRY(do_ioctl(fd_.get(), KVM_SIGNAL_MSI, &msi, "KVM_SIGNAL_MSI"));
  return {};
}

Result<void> Vm::set_gsi_routing(std::span<const kvm_irq_routing_entry> entries) {
  Flex<kvm_irq_routing_entry> buf(kIrqRoutingHeader, entries.size());
  buf.count() = static_cast<uint32_t>(entries.size());
  std::memcpy(buf.entries(), entries.data(), entries.size_bytes());
  IOASIS_TRY(do_ioctl(fd_.get(), kSetGsiRouting, buf.get(), "KVM_SET_GSI_ROUTING"));
  return {};
}

Result<void> Vm::irqfd(int eventfd, uint32_t gsi, bool assign) {
  kvm_irqfd req{};
  req.fd = static_cast<uint32_t>(eventfd);
  req.gsi = gsi;
  req.flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN;
  IOASIS_TRY(do_ioctl(fd_.get(), KVM_IRQFD, &req, "KVM_IRQFD"));
  return {};
}

Result<void> Vm::irqfd_resample(int eventfd, int resamplefd, uint32_t gsi) {
  kvm_irqfd req{};
  req.fd = static_cast<uint32_t>(eventfd);
  req.resamplefd = static_cast<uint32_t>(resamplefd);
  req.gsi = gsi;
  req.flags = KVM_IRQFD_FLAG_RESAMPLE;
  IOASIS_TRY(do_ioctl(fd_.get(), KVM_IRQFD, &req, "KVM_IRQFD (resample)"));
  return {};
}

Result<void> Vm::ioeventfd(int eventfd, uint64_t addr, uint32_t len, bool pio,
                           std::optional<uint64_t> datamatch, bool assign) {
  kvm_ioeventfd req{};
  req.fd = eventfd;
  req.addr = addr;
  req.len = len;
  if (pio) req.flags |= KVM_IOEVENTFD_FLAG_PIO;
  if (datamatch) {
    req.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
    req.datamatch = *datamatch;
  }
  if (!assign) req.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
  IOASIS_TRY(do_ioctl(fd_.get(), KVM_IOEVENTFD, &req, "KVM_IOEVENTFD"));
  return {};
}

Result<Vcpu> Vm::create_vcpu(uint32_t id) const {
  IOASIS_ASSIGN_OR_RETURN(int fd, do_ioctl(fd_.get(), KVM_CREATE_VCPU,
                                           static_cast<unsigned long>(id), "KVM_CREATE_VCPU"));
  UniqueFd vcpu_fd(fd);
  IOASIS_ASSIGN_OR_RETURN(MappedRegion run,
                          MappedRegion::map(run_size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  return Vcpu(std::move(vcpu_fd), std::move(run), id);
}

Result<void> Vcpu::run() {
  if (::ioctl(fd_.get(), KVM_RUN, 0) < 0) return Error::from_errno("KVM_RUN");
  return {};
}

Result<kvm_regs> Vcpu::get_regs() const {
  kvm_regs regs{};
  IOASIS_TRY(do_ioctl(fd_.get(), KVM_GET_REGS, &regs, "KVM_GET_REGS"));
  return regs;
}

Result<void> Vcpu::set_regs(const kvm_regs& regs) {
  IOASIS_TRY(do_ioctl(fd_.get(), KVM_SET_REGS, &regs, "KVM_SET_REGS"));
  return {};
}

Result<kvm_sregs> Vcpu::get_sregs() const {
  kvm_sregs sregs{};
  IOASIS_TRY(do_ioctl(fd_.get(), KVM_GET_SREGS, &sregs, "KVM_GET_SREGS"));
  return sregs;
}

Result<void> Vcpu::set_sregs(const kvm_sregs& sregs) {
  IOASIS_TRY(do_ioctl(fd_.get(), KVM_SET_SREGS, &sregs, "KVM_SET_SREGS"));
  return {};
}

Result<void> Vcpu::set_fpu(const kvm_fpu& fpu) {
  IOASIS_TRY(do_ioctl(fd_.get(), KVM_SET_FPU, &fpu, "KVM_SET_FPU"));
  return {};
}

Result<void> Vcpu::set_cpuid(std::span<const kvm_cpuid_entry2> entries) {
  Flex<kvm_cpuid_entry2> buf(kCpuid2Header, entries.size());
  buf.count() = static_cast<uint32_t>(entries.size());
  std::memcpy(buf.entries(), entries.data(), entries.size_bytes());
  IOASIS_TRY(do_ioctl(fd_.get(), kSetCpuid2, buf.get(), "KVM_SET_CPUID2"));
  return {};
}

Result<void> Vcpu::set_msrs(std::span<const kvm_msr_entry> entries) {
  Flex<kvm_msr_entry> buf(kMsrsHeader, entries.size());
  buf.count() = static_cast<uint32_t>(entries.size());
  std::memcpy(buf.entries(), entries.data(), entries.size_bytes());
  IOASIS_ASSIGN_OR_RETURN(int set, do_ioctl(fd_.get(), kSetMsrs, buf.get(), "KVM_SET_MSRS"));
  if (static_cast<size_t>(set) != entries.size()) {
    return Error(Errc::kUnsupported,
                 fmt::format("KVM_SET_MSRS: KVM refused MSR {:#x}", entries[set].index));
  }
  return {};
}

Result<uint64_t> Vcpu::get_msr(uint32_t index) const {
  Flex<kvm_msr_entry> buf(kMsrsHeader, 1);
  buf.count() = 1;
  buf.entries()[0].index = index;
  IOASIS_ASSIGN_OR_RETURN(int got, do_ioctl(fd_.get(), kGetMsrs, buf.get(), "KVM_GET_MSRS"));
  if (got != 1) return Error(Errc::kUnsupported, fmt::format("KVM_GET_MSRS: no MSR {:#x}", index));
  return static_cast<uint64_t>(buf.entries()[0].data);
}

Result<kvm_lapic_state> Vcpu::get_lapic() const {
  kvm_lapic_state lapic{};
  IOASIS_TRY(do_ioctl(fd_.get(), KVM_GET_LAPIC, &lapic, "KVM_GET_LAPIC"));
  return lapic;
}

Result<void> Vcpu::set_lapic(const kvm_lapic_state& lapic) {
  IOASIS_TRY(do_ioctl(fd_.get(), KVM_SET_LAPIC, &lapic, "KVM_SET_LAPIC"));
  return {};
}

Result<kvm_mp_state> Vcpu::get_mp_state() const {
  kvm_mp_state state{};
  IOASIS_TRY(do_ioctl(fd_.get(), KVM_GET_MP_STATE, &state, "KVM_GET_MP_STATE"));
  return state;
}

}  // namespace ioasis::kvm
