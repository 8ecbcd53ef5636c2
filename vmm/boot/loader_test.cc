#include "vmm/boot/loader.h"

#include <elf.h>
#include <gtest/gtest.h>

#include <cstring>

#include "vmm/layout.h"

namespace ioasis::boot {
namespace {

template <typename T>
void put(std::vector<uint8_t>& v, size_t at, const T& value) {
  if (v.size() < at + sizeof(T)) v.resize(at + sizeof(T));
  std::memcpy(v.data() + at, &value, sizeof(T));
}

// A minimal ELF64: one PT_LOAD of `payload` at `paddr`, and a PVH note when pvh_entry != 0.
std::vector<uint8_t> make_elf(uint64_t paddr, std::vector<uint8_t> payload, uint32_t pvh_entry) {
  std::vector<uint8_t> f(0x200, 0);
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_type = ET_EXEC;
  eh.e_machine = EM_X86_64;
  eh.e_entry = paddr;
  eh.e_phoff = sizeof(Elf64_Ehdr);
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = pvh_entry ? 2 : 1;
  put(f, 0, eh);
  size_t data_at = 0x200, note_at = 0x100;
  Elf64_Phdr load{};
  load.p_type = PT_LOAD;
  load.p_offset = data_at;
  load.p_paddr = paddr;
  load.p_filesz = payload.size();
  load.p_memsz = payload.size() + 0x100;  // bss
  put(f, eh.e_phoff, load);
  if (pvh_entry) {
    Elf64_Nhdr nh{4, 4, kXenElfnotePhys32Entry};
    put(f, note_at, nh);
    std::memcpy(f.data() + note_at + sizeof(nh), "Xen", 4);
    put(f, note_at + sizeof(nh) + 4, pvh_entry);
    Elf64_Phdr note{};
    note.p_type = PT_NOTE;
    note.p_offset = note_at;
    note.p_filesz = sizeof(nh) + 8;
    put(f, eh.e_phoff + sizeof(Elf64_Phdr), note);
  }
  f.resize(data_at + payload.size());
  std::memcpy(f.data() + data_at, payload.data(), payload.size());
  return f;
}

class LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mem = std::make_unique<GuestMemory>(*GuestMemory::create(32 << 20));
    config.kernel_name = "test";
    config.cmdline = "test=boot console=ttyS0";
    config.rsdp = Gpa(layout::kAcpiStart);
    config.memory_map = memory_map(*mem);
  }
  std::unique_ptr<GuestMemory> mem;
  BootConfig config;
};

TEST_F(LoaderTest, PvhElfLoadsSegmentsAndWritesStartInfo) {
  config.kernel = make_elf(0x100000, {1, 2, 3, 4}, 0x100040);
  config.initramfs = std::vector<uint8_t>(5000, 0xab);
  auto entry = load_kernel(*mem, config);
  ASSERT_TRUE(entry.ok()) << entry.error().message();
  EXPECT_EQ(entry->format, KernelFormat::kElfPvh);
  EXPECT_FALSE(entry->long_mode);
  EXPECT_EQ(entry->rip, 0x100040u);
  EXPECT_EQ(*mem->read_obj<uint32_t>(Gpa(0x100000)), 0x04030201u);
  EXPECT_EQ(*mem->read_obj<uint32_t>(Gpa(0x100004)), 0u);  // bss cleared

  auto info = *mem->read_obj<HvmStartInfo>(Gpa(entry->rbx));
  EXPECT_EQ(info.magic, kHvmStartMagic);
  EXPECT_EQ(info.rsdp_paddr, layout::kAcpiStart);
  EXPECT_EQ(info.memmap_entries, config.memory_map.size());
  ASSERT_EQ(info.nr_modules, 1u);
  auto mod = *mem->read_obj<HvmModlistEntry>(Gpa(info.modlist_paddr));
  EXPECT_EQ(mod.size, 5000u);
  EXPECT_EQ(*mem->read_obj<uint8_t>(Gpa(mod.paddr + 4999)), 0xab);
  EXPECT_EQ(mod.paddr % 4096, 0u);
  char cmdline[32] = {};
  ASSERT_TRUE(
      mem->read(Gpa(info.cmdline_paddr), std::span(reinterpret_cast<uint8_t*>(cmdline), 31)).ok());
  EXPECT_STREQ(cmdline, "test=boot console=ttyS0");
}

TEST_F(LoaderTest, ElfWithoutPvhNoteUses64BitEntryAndZeroPage) {
  config.kernel = make_elf(0x1000000, {0x90}, 0);
  auto entry = load_kernel(*mem, config);
  ASSERT_TRUE(entry.ok()) << entry.error().message();
  EXPECT_TRUE(entry->long_mode);
  EXPECT_EQ(entry->rip, 0x1000000u);
  EXPECT_EQ(*mem->read_obj<uint8_t>(Gpa(entry->rsi + 0x1e8)), config.memory_map.size());
  EXPECT_EQ(*mem->read_obj<uint32_t>(Gpa(entry->rsi + 0x228)), layout::kCmdline);
}

TEST_F(LoaderTest, RejectsTruncatedElf) {
  auto elf = make_elf(0x100000, std::vector<uint8_t>(64, 1), 0x100000);
  elf.resize(elf.size() - 10);
  config.kernel = elf;
  auto r = load_kernel(*mem, config);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("truncated"), std::string::npos) << r.error().message();
  config.kernel.resize(20);
  EXPECT_NE(load_kernel(*mem, config).error().message().find("truncated ELF header"),
            std::string::npos);
}

TEST_F(LoaderTest, RejectsWrongMagic) {
  config.kernel = std::vector<uint8_t>(4096, 0x55);
  auto r = load_kernel(*mem, config);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("neither an ELF"), std::string::npos);
}

TEST_F(LoaderTest, RejectsKernelTooBigForRam) {
  config.kernel = make_elf(0x1f00000, std::vector<uint8_t>(2 << 20, 1), 0x1f00000);
  auto r = load_kernel(*mem, config);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("does not fit in guest RAM"), std::string::npos);
}

TEST_F(LoaderTest, RejectsInitramfsThatDoesNotFit) {
  config.kernel = make_elf(0x100000, {1}, 0x100000);
  config.initramfs = std::vector<uint8_t>(40 << 20, 0);
  auto r = load_kernel(*mem, config);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("initramfs"), std::string::npos);
}

std::vector<uint8_t> make_bzimage(uint16_t version, uint16_t xloadflags, size_t kernel_bytes) {
  std::vector<uint8_t> f(5 * 512 + kernel_bytes, 0);
  SetupHeader h{};
  h.setup_sects = 4;
  h.boot_flag = kBootFlag;
  h.header = kHdrSMagic;
  h.version = version;
  h.xloadflags = xloadflags;
  h.initrd_addr_max = 0x7fffffff;
  h.cmdline_size = 2048;
  h.init_size = static_cast<uint32_t>(kernel_bytes * 2);
  std::memcpy(f.data() + kSetupHeaderOffset, &h, sizeof(h));
  f[5 * 512] = 0xe9;
  return f;
}

TEST_F(LoaderTest, BzImageLoadsAtOneMegabyteWith64BitEntry) {
  config.kernel = make_bzimage(0x20f, kXlfKernel64, 8192);
  auto entry = load_kernel(*mem, config);
  ASSERT_TRUE(entry.ok()) << entry.error().message();
  EXPECT_EQ(entry->format, KernelFormat::kBzImage);
  EXPECT_EQ(entry->rip, 0x100200u);
  EXPECT_EQ(*mem->read_obj<uint8_t>(Gpa(0x100000)), 0xe9);
  auto hdr = *mem->read_obj<SetupHeader>(Gpa(entry->rsi + kSetupHeaderOffset));
  EXPECT_EQ(hdr.type_of_loader, 0xff);
  EXPECT_EQ(hdr.cmd_line_ptr, layout::kCmdline);
}

TEST_F(LoaderTest, BzImageWithout64BitEntryIsRefused) {
  config.kernel = make_bzimage(0x20a, 0, 4096);
  auto r = load_kernel(*mem, config);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("64-bit entry"), std::string::npos);
}

TEST_F(LoaderTest, BzImageTooLargeToDecompressIsRefused) {
  config.kernel = make_bzimage(0x20f, kXlfKernel64, 20 << 20);
  auto r = load_kernel(*mem, config);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("too small"), std::string::npos) << r.error().message();
}

}  // namespace
}  // namespace ioasis::boot
