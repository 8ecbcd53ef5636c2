// Shared by the loaders: command line, initramfs placement, and the two start-of-day structures
// (Linux boot_params and PVH hvm_start_info).
#pragma once

#include "vmm/boot/loader.h"

namespace ioasis::boot {

struct InitramfsPlacement {
  Gpa gpa;
  uint64_t size = 0;
};

Result<void> write_cmdline(const GuestMemory& mem, const std::string& cmdline);

// Copies the initramfs to the highest page-aligned spot below min(RAM below 4 GiB, limit) that
// stays above `kernel_end`. Returns an empty placement when there is no initramfs.
Result<InitramfsPlacement> place_initramfs(const GuestMemory& mem, const BootConfig& config,
                                           uint64_t kernel_end, uint64_t limit);

// boot_params at layout::kZeroPage, with `header` (the image's setup header or a synthesized one).
Result<uint64_t> write_zero_page(const GuestMemory& mem, const BootConfig& config,
                                 SetupHeader header, const InitramfsPlacement& initrd);

// hvm_start_info, its memory map and the initramfs as module 0, at layout::kPvhStartInfo.
Result<uint64_t> write_pvh_start_info(const GuestMemory& mem, const BootConfig& config,
                                      const InitramfsPlacement& initrd);

}  // namespace ioasis::boot
