// Wire layouts of the boot protocols ioasis speaks: the Linux x86 boot protocol
// (Documentation/arch/x86/boot.rst, zero-page.rst) and Xen's PVH start info
// (xen/include/public/arch-x86/hvm/start_info.h).
#pragma once

#include <cstddef>
#include <cstdint>

namespace ioasis::boot {

// E820 / PVH memory map types.
inline constexpr uint32_t kE820Ram = 1;
inline constexpr uint32_t kE820Reserved = 2;
inline constexpr uint32_t kE820Acpi = 3;

struct [[gnu::packed]] E820Entry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
};
static_assert(sizeof(E820Entry) == 20);

// boot.rst "The real-mode kernel header", at offset 0x1f1 of the image and of boot_params.
struct [[gnu::packed]] SetupHeader {
  uint8_t setup_sects;
  uint16_t root_flags;
  uint32_t syssize;
  uint16_t ram_size;
  uint16_t vid_mode;
  uint16_t root_dev;
  uint16_t boot_flag;  // 0xaa55
  uint16_t jump;
  uint32_t header;  // "HdrS"
  uint16_t version;
  uint32_t realmode_swtch;
  uint16_t start_sys_seg;
  uint16_t kernel_version;
  uint8_t type_of_loader;
  uint8_t loadflags;
  uint16_t setup_move_size;
  uint32_t code32_start;
  uint32_t ramdisk_image;
  uint32_t ramdisk_size;
  uint32_t bootsect_kludge;
  uint16_t heap_end_ptr;
  uint8_t ext_loader_ver;
  uint8_t ext_loader_type;
  uint32_t cmd_line_ptr;
  uint32_t initrd_addr_max;
  uint32_t kernel_alignment;
  uint8_t relocatable_kernel;
  uint8_t min_alignment;
  uint16_t xloadflags;
  uint32_t cmdline_size;
  uint32_t hardware_subarch;
  uint64_t hardware_subarch_data;
  uint32_t payload_offset;
  uint32_t payload_length;
  uint64_t setup_data;
  uint64_t pref_address;
  uint32_t init_size;
  uint32_t handover_offset;
  uint32_t kernel_info_offset;
};
static_assert(offsetof(SetupHeader, header) == 0x202 - 0x1f1);
static_assert(offsetof(SetupHeader, cmd_line_ptr) == 0x228 - 0x1f1);
static_assert(offsetof(SetupHeader, xloadflags) == 0x236 - 0x1f1);
static_assert(offsetof(SetupHeader, pref_address) == 0x258 - 0x1f1);
static_assert(offsetof(SetupHeader, init_size) == 0x260 - 0x1f1);

inline constexpr uint32_t kSetupHeaderOffset = 0x1f1;
inline constexpr uint32_t kHdrSMagic = 0x53726448;  // "HdrS"
inline constexpr uint16_t kBootFlag = 0xaa55;
inline constexpr uint8_t kLoadflagLoadedHigh = 0x01;
inline constexpr uint8_t kLoadflagCanUseHeap = 0x80;
inline constexpr uint16_t kXlfKernel64 = 0x01;

// zero-page.rst: the 4 KiB boot_params ("zero page").
inline constexpr size_t kZeroPageSize = 4096;
inline constexpr size_t kZeroPageE820Entries = 0x1e8;
inline constexpr size_t kZeroPageE820Table = 0x2d0;
inline constexpr size_t kZeroPageE820Max = 128;
inline constexpr size_t kZeroPageAcpiRsdp = 0x070;

// PVH: the ELF note and hvm_start_info (version 1 adds the memory map).
inline constexpr uint32_t kXenElfnotePhys32Entry = 18;
inline constexpr uint32_t kHvmStartMagic = 0x336ec578;

struct [[gnu::packed]] HvmStartInfo {
  uint32_t magic;
  uint32_t version;
  uint32_t flags;
  uint32_t nr_modules;
  uint64_t modlist_paddr;
  uint64_t cmdline_paddr;
  uint64_t rsdp_paddr;
  uint64_t memmap_paddr;
  uint32_t memmap_entries;
  uint32_t reserved;
};
static_assert(sizeof(HvmStartInfo) == 56);

struct [[gnu::packed]] HvmModlistEntry {
  uint64_t paddr;
  uint64_t size;
  uint64_t cmdline_paddr;
  uint64_t reserved;
};
static_assert(sizeof(HvmModlistEntry) == 32);

struct [[gnu::packed]] HvmMemmapEntry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
  uint32_t reserved;
};
static_assert(sizeof(HvmMemmapEntry) == 24);

}  // namespace ioasis::boot
