#include "vmm/x86/cpuid.h"

#include <gtest/gtest.h>

#include "vmm/kvm/kvm.h"

namespace ioasis::x86 {
namespace {

kvm_cpuid_entry2 entry(uint32_t fn, uint32_t index, uint32_t ebx, uint32_t ecx,
                       uint32_t flags = 0) {
  kvm_cpuid_entry2 e{};
  e.function = fn;
  e.index = index;
  e.ebx = ebx;
  e.ecx = ecx;
  e.flags = flags;
  return e;
}

std::vector<kvm_cpuid_entry2> fake_host() {
  // avx, xsave, cx16 in leaf 1; avx2 in leaf 7.0.
  return {entry(1, 0, 0, (1u << 28) | (1u << 26) | (1u << 13)),
          entry(7, 0, 1u << 5, 0, KVM_CPUID_FLAG_SIGNIFCANT_INDEX),
          entry(7, 1, 1u << 5, 0, KVM_CPUID_FLAG_SIGNIFCANT_INDEX)};
}

TEST(CpuPolicy, ParsesPolicyAndFeatureList) {
  auto p = CpuPolicy::parse("baseline,+x2apic,-avx");
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_EQ(p->name, "baseline");
  EXPECT_EQ(p->add, std::vector<std::string>{"x2apic"});
  EXPECT_EQ(p->remove, std::vector<std::string>{"avx"});
}

TEST(CpuPolicy, RejectsUnknownFeatureNamingIt) {
  auto p = CpuPolicy::parse("-avx,-warp_drive");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message().find("warp_drive"), std::string::npos);
  EXPECT_FALSE(CpuPolicy::parse("-avx,host").ok());
}

TEST(CpuPolicy, RemovingXsaveRemovesAvxAndAvx2) {
  auto entries = apply_policy(fake_host(), *CpuPolicy::parse("-xsave"));
  ASSERT_TRUE(entries.ok());
  EXPECT_FALSE(has_feature(*entries, "xsave"));
  EXPECT_FALSE(has_feature(*entries, "avx"));
  EXPECT_FALSE(has_feature(*entries, "avx2"));
  EXPECT_TRUE(has_feature(*entries, "cx16"));
}

TEST(CpuPolicy, BaselineDropsWhatAnEmulatorCannotRun) {
  auto entries = apply_policy(fake_host(), *CpuPolicy::parse("baseline"));
  ASSERT_TRUE(entries.ok());
  EXPECT_FALSE(has_feature(*entries, "cx16"));
  EXPECT_FALSE(has_feature(*entries, "avx2"));
}

TEST(CpuPolicy, AddingUnsupportedFeatureFails) {
  auto entries = apply_policy(fake_host(), *CpuPolicy::parse("+x2apic"));
  ASSERT_FALSE(entries.ok());
  EXPECT_EQ(entries.error().code(), Errc::kUnsupported);
}

TEST(Cpuid, PerVcpuApicIdAndHypervisorBit) {
  auto e = for_vcpu(fake_host(), 3, 4);
  EXPECT_EQ(e[0].ebx >> 24, 3u);
  EXPECT_TRUE(e[0].ecx & (1u << 31));
}

TEST(Cpuid, RealKvmSupportedSetFilters) {
  auto sys = kvm::System::open();
  if (!sys) GTEST_SKIP() << sys.error().message();
  auto supported = sys->supported_cpuid();
  ASSERT_TRUE(supported.ok()) << supported.error().message();
  auto filtered = apply_policy(*supported, *CpuPolicy::parse("-avx,-cx16"));
  ASSERT_TRUE(filtered.ok());
  EXPECT_FALSE(has_feature(*filtered, "avx"));
  EXPECT_FALSE(has_feature(*filtered, "cx16"));
}

}  // namespace
}  // namespace ioasis::x86
