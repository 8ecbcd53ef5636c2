#include "vmm/memory/guest_memory.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>

#include <algorithm>

#include "vmm/layout.h"

namespace ioasis {

Result<GuestMemory> GuestMemory::create(uint64_t size) {
  constexpr uint64_t kMinRam = 4 << 20;
  if (size < kMinRam || size % 4096) {
    return Error(
        Errc::kInvalidArgument,
        fmt::format("memory size {} must be at least 4 MiB and a multiple of 4 KiB", size));
  }
  UniqueFd fd(::memfd_create("ioasis-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) return Error::from_errno("memfd_create for guest RAM");
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) < 0) {
    return Error::from_errno(fmt::format("sizing guest RAM to {} bytes", size));
  }
  // Peers get this fd; sealing its size keeps one from shrinking RAM under us.
  ::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW);
  IOASIS_ASSIGN_OR_RETURN(
      MappedRegion map,
      MappedRegion::map(size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd.get(), 0));

  std::vector<RamRegion> regions;
  uint64_t low = std::min(size, layout::kRamBelow4gEnd);
  regions.push_back({Gpa(0), low, Hva::of(map.data()), 0});
  if (size > low) {
    regions.push_back({Gpa(layout::k4GiB), size - low, Hva::of(map.data() + low), low});
  }
  return GuestMemory(std::move(fd), std::move(map), size, std::move(regions));
}

Gpa GuestMemory::end() const {
  const RamRegion& last = regions_.back();
  return last.gpa + last.size;
}

Result<Hva> GuestMemory::hva(Gpa gpa, uint64_t len) const {
  for (const RamRegion& r : regions_) {
    if (gpa < r.gpa || gpa.value - r.gpa.value >= r.size) continue;
    uint64_t offset = gpa - r.gpa;
    if (len > r.size - offset) break;
    return r.hva + offset;
  }
  return Error(Errc::kInvalidArgument,
               fmt::format("guest range {:#x}+{:#x} is not inside guest RAM", gpa.value, len));
}

std::optional<Gpa> GuestMemory::gpa_of(Hva hva) const {
  for (const RamRegion& r : regions_) {
    if (hva >= r.hva && hva - r.hva < r.size) return r.gpa + (hva - r.hva);
  }
  return std::nullopt;
}

Result<void> GuestMemory::read(Gpa gpa, std::span<uint8_t> out) const {
  IOASIS_ASSIGN_OR_RETURN(Hva h, hva(gpa, out.size()));
  std::memcpy(out.data(), h.ptr(), out.size());
  return {};
}

Result<void> GuestMemory::write(Gpa gpa, std::span<const uint8_t> in) const {
  IOASIS_ASSIGN_OR_RETURN(Hva h, hva(gpa, in.size()));
  std::memcpy(h.ptr(), in.data(), in.size());
  return {};
}

}  // namespace ioasis
