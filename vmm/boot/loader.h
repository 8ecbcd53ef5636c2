// Loads a kernel into guest RAM and lays out what it needs to start: an ELF with a PVH note (the
// test guest, vmlinux), an ELF with a 64-bit entry, or a bzImage through the 64-bit boot protocol.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/address.h"
#include "base/result.h"
#include "vmm/boot/boot_abi.h"
#include "vmm/memory/guest_memory.h"

namespace ioasis::boot {

enum class KernelFormat { kElfPvh, kElf64, kBzImage };

const char* format_name(KernelFormat f);

struct BootConfig {
  std::vector<uint8_t> kernel;  // the whole image file
  std::string kernel_name;      // for messages
  std::string cmdline;
  std::optional<std::vector<uint8_t>> initramfs;
  Gpa rsdp;
  std::vector<E820Entry> memory_map;
};

// Where and how the boot vCPU starts.
struct BootEntry {
  KernelFormat format;
  uint64_t rip;
  bool long_mode;    // false: 32-bit protected mode (PVH)
  uint64_t rbx = 0;  // PVH: hvm_start_info
  uint64_t rsi = 0;  // Linux 64-bit: boot_params
};

// The e820 map for this RAM layout: RAM, the legacy hole, ACPI area, ECAM.
std::vector<E820Entry> memory_map(const GuestMemory& mem);

// Reads a whole file with a size limit, naming the file in errors.
Result<std::vector<uint8_t>> read_file(const std::string& path, uint64_t max_size);

// Detects the format, loads the kernel and initramfs, writes boot_params or hvm_start_info and
// the command line. Any malformed input is an error naming the file and what is wrong.
Result<BootEntry> load_kernel(const GuestMemory& mem, const BootConfig& config);

// Pieces of load_kernel, exposed for tests.
Result<BootEntry> load_elf(const GuestMemory& mem, const BootConfig& config);
Result<BootEntry> load_bzimage(const GuestMemory& mem, const BootConfig& config);

}  // namespace ioasis::boot
