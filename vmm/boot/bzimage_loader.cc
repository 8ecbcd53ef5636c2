// bzImage through the Linux 64-bit boot protocol (Documentation/arch/x86/boot.rst): the
// protected-mode part is loaded at 1 MiB and entered at its 64-bit entry, load address + 0x200,
// with boot_params in %rsi and the identity-mapped long-mode state the protocol requires.
#include <fmt/format.h>

#include <cstring>

#include "vmm/boot/boot_info.h"
#include "vmm/layout.h"

namespace ioasis::boot {

namespace {

constexpr uint64_t kLoadAddress = layout::kHighRamStart;
constexpr uint64_t kEntry64Offset = 0x200;

Error bad(const BootConfig& c, const std::string& what) {
  return Error(Errc::kInvalidArgument, fmt::format("kernel {}: {}", c.kernel_name, what));
}

// Highest address + 1 the initramfs may reach; protocols before 2.03 leave the field 0.
uint64_t initrd_limit(const SetupHeader& h) {
  return h.initrd_addr_max ? uint64_t{h.initrd_addr_max} + 1 : 0x38000000;
}

}  // namespace

Result<BootEntry> load_bzimage(const GuestMemory& mem, const BootConfig& config) {
  std::span<const uint8_t> file = config.kernel;
  SetupHeader header;
  if (file.size() < kSetupHeaderOffset + sizeof(header))
    return bad(config, "truncated bzImage header");
  std::memcpy(&header, file.data() + kSetupHeaderOffset, sizeof(header));
  if (header.header != kHdrSMagic || header.boot_flag != kBootFlag) {
    return bad(config, "no Linux boot header (HdrS/0xAA55 magic missing)");
  }
  if (header.version < 0x20c || !(header.xloadflags & kXlfKernel64)) {
    return bad(config, fmt::format("boot protocol {}.{:02} has no 64-bit entry (need 2.12 and "
                                   "XLF_KERNEL_64)",
                                   header.version >> 8, header.version & 0xff));
  }
  uint64_t setup_size = (uint64_t{header.setup_sects ? header.setup_sects : 4u} + 1) * 512;
  if (setup_size >= file.size())
    return bad(config, "truncated: no protected-mode kernel after setup");
  uint64_t kernel_size = file.size() - setup_size;
  // The kernel decompresses in place and needs init_size bytes from its load address.
  uint64_t needed = std::max<uint64_t>(kernel_size, header.init_size);
  auto dest = mem.hva(Gpa(kLoadAddress), needed);
  if (!dest) {
    return bad(config, fmt::format("needs {} MiB at 1 MiB to decompress; guest RAM is too small",
                                   (needed + (1 << 20) - 1) >> 20));
  }
  std::memcpy(dest->ptr(), file.data() + setup_size, kernel_size);

  IOASIS_TRY(write_cmdline(mem, config.cmdline));
  if (config.cmdline.size() >= header.cmdline_size && header.cmdline_size) {
    return bad(config, fmt::format("command line of {} bytes exceeds the kernel's limit of {}",
                                   config.cmdline.size(), header.cmdline_size - 1));
  }
  IOASIS_ASSIGN_OR_RETURN(
      InitramfsPlacement initrd,
      place_initramfs(mem, config, kLoadAddress + needed, initrd_limit(header)));
  IOASIS_ASSIGN_OR_RETURN(uint64_t zero_page, write_zero_page(mem, config, header, initrd));
  BootEntry entry{KernelFormat::kBzImage, kLoadAddress + kEntry64Offset, true};
  entry.rsi = zero_page;
  return entry;
}

Result<BootEntry> load_kernel(const GuestMemory& mem, const BootConfig& config) {
  static constexpr uint8_t kElfMagic[] = {0x7f, 'E', 'L', 'F'};
  if (config.kernel.size() >= 4 && std::memcmp(config.kernel.data(), kElfMagic, 4) == 0) {
    return load_elf(mem, config);
  }
  if (config.kernel.size() >= 0x206 && std::memcmp(config.kernel.data() + 0x202, "HdrS", 4) == 0) {
    return load_bzimage(mem, config);
  }
  return Error(Errc::kInvalidArgument,
               fmt::format("kernel {}: neither an ELF (0x7f 'ELF') nor a bzImage ('HdrS' at 0x202)",
                           config.kernel_name));
}

}  // namespace ioasis::boot
