// ELF64 kernels: PT_LOAD segments are copied to their physical addresses. A Xen PVH note
// (XEN_ELFNOTE_PHYS32_ENTRY) selects the 32-bit PVH entry with hvm_start_info; without one, the
// ELF entry point is taken as the Linux 64-bit entry with boot_params.
#include <elf.h>
#include <fmt/format.h>

#include <cstring>

#include "vmm/boot/boot_info.h"
#include "vmm/layout.h"

namespace ioasis::boot {

namespace {

Error bad(const BootConfig& c, const std::string& what) {
  return Error(Errc::kInvalidArgument, fmt::format("kernel {}: {}", c.kernel_name, what));
}

template <typename T>
bool read_at(std::span<const uint8_t> file, uint64_t offset, T* out) {
  if (offset > file.size() || file.size() - offset < sizeof(T)) return false;
  std::memcpy(out, file.data() + offset, sizeof(T));
  return true;
}

// Walks the notes of one PT_NOTE segment; returns the PVH entry if the Xen note is there.
std::optional<uint32_t> find_pvh_entry(std::span<const uint8_t> notes) {
  size_t pos = 0;
  auto align4 = [](uint64_t v) { return (v + 3) & ~uint64_t{3}; };
  while (pos + sizeof(Elf64_Nhdr) <= notes.size()) {
    Elf64_Nhdr nh;
    std::memcpy(&nh, notes.data() + pos, sizeof(nh));
    uint64_t name_at = pos + sizeof(nh);
    uint64_t desc_at = name_at + align4(nh.n_namesz);
    uint64_t next = desc_at + align4(nh.n_descsz);
    if (next > notes.size()) return std::nullopt;
    bool is_xen = nh.n_namesz == 4 && std::memcmp(notes.data() + name_at, "Xen", 4) == 0;
    if (is_xen && nh.n_type == kXenElfnotePhys32Entry && nh.n_descsz >= 4) {
      uint32_t entry;
      std::memcpy(&entry, notes.data() + desc_at, 4);
      return entry;
    }
    pos = next;
  }
  return std::nullopt;
}

}  // namespace

Result<BootEntry> load_elf(const GuestMemory& mem, const BootConfig& config) {
  std::span<const uint8_t> file = config.kernel;
  Elf64_Ehdr eh;
  if (!read_at(file, 0, &eh)) return bad(config, "truncated ELF header");
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
      eh.e_machine != EM_X86_64) {
    return bad(config, "not a little-endian x86-64 ELF64 image");
  }
  if (eh.e_type != ET_EXEC) return bad(config, "ELF is not an executable (ET_EXEC)");
  if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 ||
      eh.e_phoff + uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr) > file.size()) {
    return bad(config, "truncated or malformed program header table");
  }

  std::optional<uint32_t> pvh_entry;
  uint64_t kernel_end = 0;
  for (uint16_t i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    read_at(file, eh.e_phoff + i * sizeof(Elf64_Phdr), &ph);
    if (ph.p_type == PT_NOTE) {
      if (!range_fits(ph.p_offset, ph.p_filesz) || ph.p_offset + ph.p_filesz > file.size()) {
        return bad(config, fmt::format("note segment {} lies outside the file", i));
      }
      if (!pvh_entry) pvh_entry = find_pvh_entry(file.subspan(ph.p_offset, ph.p_filesz));
      continue;
    }
    if (ph.p_type != PT_LOAD || ph.p_memsz == 0) continue;
    if (ph.p_filesz > ph.p_memsz || !range_fits(ph.p_offset, ph.p_filesz) ||
        ph.p_offset + ph.p_filesz > file.size()) {
      return bad(config,
                 fmt::format("segment {} is truncated ({} bytes at offset {:#x}, file is {})", i,
                             ph.p_filesz, ph.p_offset, file.size()));
    }
    if (ph.p_paddr < layout::kHighRamStart) {
      return bad(config, fmt::format("segment {} loads at {:#x}, below 1 MiB where boot data lives",
                                     i, ph.p_paddr));
    }
    auto dest = mem.hva(Gpa(ph.p_paddr), ph.p_memsz);
    if (!dest) {
      return bad(config, fmt::format("segment {} ({:#x}+{:#x}) does not fit in guest RAM "
                                     "(too big for --memory?)",
                                     i, ph.p_paddr, ph.p_memsz));
    }
    std::memcpy(dest->ptr(), file.data() + ph.p_offset, ph.p_filesz);
    std::memset(dest->ptr() + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
    kernel_end = std::max(kernel_end, ph.p_paddr + ph.p_memsz);
  }
  if (kernel_end == 0) return bad(config, "no loadable segment");

  IOASIS_TRY(write_cmdline(mem, config.cmdline));
  if (pvh_entry) {
    IOASIS_ASSIGN_OR_RETURN(InitramfsPlacement initrd,
                            place_initramfs(mem, config, kernel_end, layout::kRamBelow4gEnd));
    IOASIS_ASSIGN_OR_RETURN(uint64_t info, write_pvh_start_info(mem, config, initrd));
    BootEntry entry{KernelFormat::kElfPvh, *pvh_entry, false};
    entry.rbx = info;
    return entry;
  }
  // A 64-bit entry wants boot_params; synthesise the setup header a bzImage would carry.
  SetupHeader header{};
  header.boot_flag = kBootFlag;
  header.header = kHdrSMagic;
  header.version = 0x20f;
  header.kernel_alignment = 0x1000000;
  header.cmdline_size = static_cast<uint32_t>(layout::kCmdlineMax - 1);
  IOASIS_ASSIGN_OR_RETURN(InitramfsPlacement initrd,
                          place_initramfs(mem, config, kernel_end, 0x7fffffff));
  IOASIS_ASSIGN_OR_RETURN(uint64_t zero_page, write_zero_page(mem, config, header, initrd));
  BootEntry entry{KernelFormat::kElf64, eh.e_entry, true};
  entry.rsi = zero_page;
  return entry;
}

}  // namespace ioasis::boot
