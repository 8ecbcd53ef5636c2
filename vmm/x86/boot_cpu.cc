#include "vmm/x86/boot_cpu.h"

#include "vmm/layout.h"

namespace ioasis::x86 {

namespace {

// Intel SDM vol. 3A 3.4.5: segment descriptor layout.
constexpr uint64_t descriptor(uint64_t flags, uint64_t base, uint64_t limit) {
  return ((base & 0xff000000) << 32) | ((flags & 0xf0ff) << 40) | ((limit & 0xf0000) << 32) |
         ((base & 0x00ffffff) << 16) | (limit & 0xffff);
}

const uint64_t kGdt[] = {
    0,
    descriptor(0xc09b, 0, 0xfffff),  // 0x08 32-bit code
    descriptor(0xa09b, 0, 0xfffff),  // 0x10 64-bit code
    descriptor(0xc093, 0, 0xfffff),  // 0x18 data
    descriptor(0x808b, 0, 0xfffff),  // 0x20 TSS (busy)
};

kvm_segment segment_from(uint64_t d, uint16_t selector) {
  kvm_segment s{};
  s.base = ((d >> 16) & 0xffffff) | (((d >> 56) & 0xff) << 24);
  uint32_t limit = static_cast<uint32_t>((d & 0xffff) | (((d >> 48) & 0xf) << 16));
  s.g = (d >> 55) & 1;
  s.limit = s.g ? (limit << 12) | 0xfff : limit;
  s.selector = selector;
  s.type = (d >> 40) & 0xf;
  s.s = (d >> 44) & 1;
  s.dpl = (d >> 45) & 3;
  s.present = (d >> 47) & 1;
  s.avl = (d >> 52) & 1;
  s.l = (d >> 53) & 1;
  s.db = (d >> 54) & 1;
  return s;
}

constexpr uint64_t kCr0Pe = 1 << 0, kCr0Et = 1 << 4, kCr0Pg = 1ull << 31;
constexpr uint64_t kCr4Pae = 1 << 5;
constexpr uint64_t kEferLme = 1 << 8, kEferLma = 1 << 10;
constexpr uint64_t kPtePresent = 1, kPteWrite = 2, kPtePs = 1 << 7;

}  // namespace

Result<void> write_boot_tables(const GuestMemory& mem) {
  for (size_t i = 0; i < std::size(kGdt); ++i) {
    IOASIS_TRY(mem.write_obj(Gpa(layout::kGdt + i * 8), kGdt[i]));
  }
  // PML4 -> one PDPT -> four page directories of 2 MiB pages: identity map of 0-4 GiB.
  const uint64_t pml4 = layout::kPageTables, pdpt = pml4 + 0x1000, pd = pml4 + 0x2000;
  IOASIS_TRY(mem.write_obj(Gpa(pml4), pdpt | kPtePresent | kPteWrite));
  for (uint64_t i = 0; i < 4; ++i) {
    IOASIS_TRY(mem.write_obj(Gpa(pdpt + i * 8), (pd + i * 0x1000) | kPtePresent | kPteWrite));
  }
  for (uint64_t i = 0; i < 4 * 512; ++i) {
    IOASIS_TRY(mem.write_obj(Gpa(pd + i * 8), (i << 21) | kPtePresent | kPteWrite | kPtePs));
  }
  return {};
}

kvm_sregs entry_sregs(kvm_sregs s, EntryMode mode) {
  const bool long_mode = mode == EntryMode::kLong64;
  kvm_segment code =
      segment_from(long_mode ? kGdt[2] : kGdt[1], long_mode ? kSelCode64 : kSelCode32);
  kvm_segment data = segment_from(kGdt[3], kSelData);
  s.cs = code;
  s.ds = s.es = s.fs = s.gs = s.ss = data;
  s.tr = segment_from(kGdt[4], kSelTss);
  s.gdt.base = layout::kGdt;
  s.gdt.limit = sizeof(kGdt) - 1;
  s.idt.base = 0;
  s.idt.limit = 0;
  s.cr0 = kCr0Pe | kCr0Et;
  s.cr4 = 0;
  s.efer = 0;
  if (long_mode) {
    s.cr3 = layout::kPageTables;
    s.cr4 |= kCr4Pae;
    s.cr0 |= kCr0Pg;
    s.efer |= kEferLme | kEferLma;
  }
  return s;
}

std::vector<kvm_msr_entry> boot_msrs() {
  auto msr = [](uint32_t index, uint64_t data) {
    kvm_msr_entry e{};
    e.index = index;
    e.data = data;
    return e;
  };
  return {
      msr(0x174, 0),
      msr(0x175, 0),
      msr(0x176, 0),  // SYSENTER CS/ESP/EIP
      msr(0xc0000081, 0),
      msr(0xc0000082, 0),
      msr(0xc0000084, 0),
      msr(0xc0000102, 0),         // STAR..
      msr(0x10, 0),               // TSC
      msr(0x1a0, 1),              // MISC_ENABLE: fast strings
      msr(0x2ff, (1 << 11) | 6),  // MTRR default type: enabled, write-back
  };
}

kvm_fpu boot_fpu() {
  kvm_fpu fpu{};
  fpu.fcw = 0x37f;
  fpu.mxcsr = 0x1f80;
  return fpu;
}

}  // namespace ioasis::x86
