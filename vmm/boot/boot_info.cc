#include "vmm/boot/boot_info.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "vmm/layout.h"

namespace ioasis::boot {

const char* format_name(KernelFormat f) {
  switch (f) {
    case KernelFormat::kElfPvh:
      return "ELF (PVH entry)";
    case KernelFormat::kElf64:
      return "ELF (64-bit entry)";
    case KernelFormat::kBzImage:
      return "bzImage";
  }
  return "?";
}

std::vector<E820Entry> memory_map(const GuestMemory& mem) {
  std::vector<E820Entry> map;
  const RamRegion& low = mem.regions()[0];
  map.push_back({0, layout::kLowRamEnd, kE820Ram});
  // 0xa0000-0xfffff: legacy VGA/BIOS hole; the ACPI tables sit in its top 128 KiB.
  map.push_back({layout::kAcpiStart, layout::kAcpiSize, kE820Reserved});
  map.push_back({layout::kHighRamStart, low.size - layout::kHighRamStart, kE820Ram});
  // Linux only trusts an MCFG region that firmware also reserved.
  map.push_back({layout::kPciEcamStart, layout::kPciEcamSize, kE820Reserved});
  for (size_t i = 1; i < mem.regions().size(); ++i) {
    map.push_back({mem.regions()[i].gpa.value, mem.regions()[i].size, kE820Ram});
  }
  return map;
}

Result<std::vector<uint8_t>> read_file(const std::string& path, uint64_t max_size) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return Error::from_errno(fmt::format("open {}", path));
  auto size = static_cast<uint64_t>(in.tellg());
  if (size > max_size) {
    return Error(Errc::kInvalidArgument,
                 fmt::format("{} is {} bytes, more than the {} bytes of guest RAM it must fit in",
                             path, size, max_size));
  }
  std::vector<uint8_t> data(size);
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(size))) {
    return Error::from_errno(fmt::format("read {}", path));
  }
  return data;
}

Result<void> write_cmdline(const GuestMemory& mem, const std::string& cmdline) {
  if (cmdline.size() + 1 > layout::kCmdlineMax) {
    return Error(Errc::kInvalidArgument, fmt::format("command line is {} bytes; the limit is {}",
                                                     cmdline.size(), layout::kCmdlineMax - 1));
  }
  std::vector<uint8_t> bytes(cmdline.begin(), cmdline.end());
  bytes.push_back(0);
  return mem.write(Gpa(layout::kCmdline), bytes);
}

Result<InitramfsPlacement> place_initramfs(const GuestMemory& mem, const BootConfig& config,
                                           uint64_t kernel_end, uint64_t limit) {
  if (!config.initramfs) return InitramfsPlacement{};
  const auto& data = *config.initramfs;
  uint64_t top = std::min<uint64_t>(mem.regions()[0].size, limit);
  uint64_t start = top > data.size() ? (top - data.size()) & ~uint64_t{0xfff} : 0;
  if (data.empty() || start < kernel_end) {
    return Error(Errc::kInvalidArgument,
                 fmt::format("initramfs of {} bytes does not fit between the kernel (ends at "
                             "{:#x}) and {:#x}",
                             data.size(), kernel_end, top));
  }
  IOASIS_TRY(mem.write(Gpa(start), data));
  return InitramfsPlacement{Gpa(start), data.size()};
}

Result<uint64_t> write_zero_page(const GuestMemory& mem, const BootConfig& config,
                                 SetupHeader header, const InitramfsPlacement& initrd) {
  std::vector<uint8_t> zp(kZeroPageSize, 0);
  header.type_of_loader = 0xff;  // "undefined" boot loader id
  header.loadflags |= kLoadflagCanUseHeap | kLoadflagLoadedHigh;
  header.heap_end_ptr = 0xfe00;
  header.cmd_line_ptr = static_cast<uint32_t>(layout::kCmdline);
  header.ramdisk_image = static_cast<uint32_t>(initrd.gpa.value);
  header.ramdisk_size = static_cast<uint32_t>(initrd.size);
  std::memcpy(zp.data() + kSetupHeaderOffset, &header, sizeof(header));

  size_t n = std::min(config.memory_map.size(), kZeroPageE820Max);
  zp[kZeroPageE820Entries] = static_cast<uint8_t>(n);
  std::memcpy(zp.data() + kZeroPageE820Table, config.memory_map.data(), n * sizeof(E820Entry));
  uint64_t rsdp = config.rsdp.value;
  std::memcpy(zp.data() + kZeroPageAcpiRsdp, &rsdp, sizeof(rsdp));
  IOASIS_TRY(mem.write(Gpa(layout::kZeroPage), zp));
  return layout::kZeroPage;
}

Result<uint64_t> write_pvh_start_info(const GuestMemory& mem, const BootConfig& config,
                                      const InitramfsPlacement& initrd) {
  const uint64_t base = layout::kPvhStartInfo;
  const uint64_t modlist = base + sizeof(HvmStartInfo);
  const uint64_t memmap = modlist + sizeof(HvmModlistEntry);
  if (memmap + config.memory_map.size() * sizeof(HvmMemmapEntry) > layout::kZeroPage) {
    return Error(Errc::kInternal, "PVH memory map does not fit below the zero page");
  }
  HvmStartInfo info{};
  info.magic = kHvmStartMagic;
  info.version = 1;
  info.cmdline_paddr = layout::kCmdline;
  info.rsdp_paddr = config.rsdp.value;
  info.memmap_paddr = memmap;
  info.memmap_entries = static_cast<uint32_t>(config.memory_map.size());
  if (initrd.size) {
    info.nr_modules = 1;
    info.modlist_paddr = modlist;
    IOASIS_TRY(mem.write_obj(Gpa(modlist), HvmModlistEntry{initrd.gpa.value, initrd.size, 0, 0}));
  }
  IOASIS_TRY(mem.write_obj(Gpa(base), info));
  for (size_t i = 0; i < config.memory_map.size(); ++i) {
    const E820Entry& e = config.memory_map[i];
    IOASIS_TRY(mem.write_obj(Gpa(memmap + i * sizeof(HvmMemmapEntry)),
                             HvmMemmapEntry{e.addr, e.size, e.type, 0}));
  }
  return base;
}

}  // namespace ioasis::boot
