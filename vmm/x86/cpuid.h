// CPUID for guests: KVM's supported set, filtered by a named policy and by the user's feature
// list (`--cpu-features -avx,-cx16`), then specialised per vCPU (APIC ids, topology).
#pragma once

#include <linux/kvm.h>

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace ioasis::x86 {

// Where a named feature lives: CPUID leaf/subleaf, register and bit.
struct CpuFeature {
  const char* name;
  uint32_t leaf;
  uint32_t subleaf;
  enum Reg { kEax, kEbx, kEcx, kEdx } reg;
  uint32_t bit;
};

const std::vector<CpuFeature>& known_features();

// The parsed `--cpu-features` value: an optional policy name followed by +feature / -feature.
//   host      everything KVM supports (the default)
//   baseline  x86-64 without AVX, BMI, XSAVE, CMPXCHG16B and TSX: what an instruction emulator
//             can run
struct CpuPolicy {
  std::string name = "host";
  std::vector<std::string> add;
  std::vector<std::string> remove;

  static Result<CpuPolicy> parse(std::string_view spec);
};

// Applies the policy to KVM's supported entries. Fails naming the feature when the user adds one
// KVM cannot provide or names one we do not know.
Result<std::vector<kvm_cpuid_entry2>> apply_policy(std::vector<kvm_cpuid_entry2> supported,
                                                   const CpuPolicy& policy);

// The entries for one vCPU: APIC id in leaf 1 and the x2APIC topology leaves, hypervisor bit.
std::vector<kvm_cpuid_entry2> for_vcpu(std::vector<kvm_cpuid_entry2> entries, uint32_t apic_id,
                                       uint32_t num_cpus);

// True when the entries advertise `name` (for tests and logging).
bool has_feature(const std::vector<kvm_cpuid_entry2>& entries, std::string_view name);

}  // namespace ioasis::x86
