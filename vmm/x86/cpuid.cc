#include "vmm/x86/cpuid.h"

#include <fmt/format.h>

#include <algorithm>
#include <sstream>

namespace ioasis::x86 {

namespace {

using R = CpuFeature;

// Intel SDM vol. 2A, CPUID instruction reference; AMD APM vol. 3 for 0x8000_0001.
const std::vector<CpuFeature> kFeatures = {
    {"sse3", 1, 0, R::kEcx, 0},
    {"pclmulqdq", 1, 0, R::kEcx, 1},
    {"ssse3", 1, 0, R::kEcx, 9},
    {"fma", 1, 0, R::kEcx, 12},
    {"cx16", 1, 0, R::kEcx, 13},
    {"pcid", 1, 0, R::kEcx, 17},
    {"sse4_1", 1, 0, R::kEcx, 19},
    {"sse4_2", 1, 0, R::kEcx, 20},
    {"x2apic", 1, 0, R::kEcx, 21},
    {"movbe", 1, 0, R::kEcx, 22},
    {"popcnt", 1, 0, R::kEcx, 23},
    {"tsc_deadline", 1, 0, R::kEcx, 24},
    {"aes", 1, 0, R::kEcx, 25},
    {"xsave", 1, 0, R::kEcx, 26},
    {"avx", 1, 0, R::kEcx, 28},
    {"f16c", 1, 0, R::kEcx, 29},
    {"rdrand", 1, 0, R::kEcx, 30},
    {"fsgsbase", 7, 0, R::kEbx, 0},
    {"bmi1", 7, 0, R::kEbx, 3},
    {"hle", 7, 0, R::kEbx, 4},
    {"avx2", 7, 0, R::kEbx, 5},
    {"smep", 7, 0, R::kEbx, 7},
    {"bmi2", 7, 0, R::kEbx, 8},
    {"erms", 7, 0, R::kEbx, 9},
    {"invpcid", 7, 0, R::kEbx, 10},
    {"rtm", 7, 0, R::kEbx, 11},
    {"avx512f", 7, 0, R::kEbx, 16},
    {"avx512dq", 7, 0, R::kEbx, 17},
    {"rdseed", 7, 0, R::kEbx, 18},
    {"adx", 7, 0, R::kEbx, 19},
    {"smap", 7, 0, R::kEbx, 20},
    {"avx512cd", 7, 0, R::kEbx, 28},
    {"sha", 7, 0, R::kEbx, 29},
    {"avx512bw", 7, 0, R::kEbx, 30},
    {"avx512vl", 7, 0, R::kEbx, 31},
    {"umip", 7, 0, R::kEcx, 2},
    {"pku", 7, 0, R::kEcx, 3},
    {"vaes", 7, 0, R::kEcx, 9},
    {"la57", 7, 0, R::kEcx, 16},
    {"rdpid", 7, 0, R::kEcx, 22},
    {"xsaveopt", 0xd, 1, R::kEax, 0},
    {"xsavec", 0xd, 1, R::kEax, 1},
    {"xsaves", 0xd, 1, R::kEax, 3},
    {"lahf_lm", 0x80000001, 0, R::kEcx, 0},
    {"abm", 0x80000001, 0, R::kEcx, 5},
    {"nx", 0x80000001, 0, R::kEdx, 20},
    {"pdpe1gb", 0x80000001, 0, R::kEdx, 26},
    {"rdtscp", 0x80000001, 0, R::kEdx, 27},
};

// Removing a feature removes what cannot work without it (AVX state lives in XSAVE areas).
const std::vector<std::pair<const char*, std::vector<const char*>>> kImplied = {
    {"xsave", {"avx", "xsaveopt", "xsavec", "xsaves"}},
    {"avx", {"avx2", "fma", "f16c", "avx512f", "vaes"}},
    {"avx512f", {"avx512dq", "avx512cd", "avx512bw", "avx512vl"}},
};

const std::vector<const char*> kBaselineRemoved = {"avx", "xsave", "cx16",  "bmi1", "bmi2",
                                                   "hle", "rtm",   "movbe", "adx"};

const CpuFeature* find_feature(std::string_view name) {
  for (const CpuFeature& f : kFeatures) {
    if (name == f.name) return &f;
  }
  return nullptr;
}

uint32_t* reg_of(kvm_cpuid_entry2& e, CpuFeature::Reg reg) {
  switch (reg) {
    case R::kEax:
      return &e.eax;
    case R::kEbx:
      return &e.ebx;
    case R::kEcx:
      return &e.ecx;
    case R::kEdx:
      return &e.edx;
  }
  return &e.eax;
}

kvm_cpuid_entry2* find_entry(std::vector<kvm_cpuid_entry2>& entries, uint32_t leaf,
                             uint32_t subleaf) {
  for (auto& e : entries) {
    bool indexed = e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
    if (e.function == leaf && (!indexed || e.index == subleaf)) return &e;
  }
  return nullptr;
}

void clear_feature(std::vector<kvm_cpuid_entry2>& entries, std::string_view name) {
  if (const CpuFeature* f = find_feature(name)) {
    if (auto* e = find_entry(entries, f->leaf, f->subleaf)) *reg_of(*e, f->reg) &= ~(1u << f->bit);
  }
  for (const auto& [parent, children] : kImplied) {
    if (name == parent) {
      for (const char* child : children) clear_feature(entries, child);
    }
  }
}

}  // namespace

const std::vector<CpuFeature>& known_features() { return kFeatures; }

Result<CpuPolicy> CpuPolicy::parse(std::string_view spec) {
  CpuPolicy policy;
  std::stringstream in{std::string(spec)};
  std::string token;
  bool first = true;
  while (std::getline(in, token, ',')) {
    if (token.empty()) continue;
    char sign = token[0];
    std::string name = (sign == '+' || sign == '-') ? token.substr(1) : token;
    if (sign != '+' && sign != '-') {
      if (!first || (name != "host" && name != "baseline")) {
        return Error(Errc::kInvalidArgument,
                     fmt::format("--cpu-features: '{}' is not a policy (host, baseline) in first "
                                 "place nor +feature/-feature",
                                 token));
      }
      policy.name = name;
    } else if (!find_feature(name)) {
      return Error(Errc::kInvalidArgument,
                   fmt::format("--cpu-features: unknown feature '{}'", name));
    } else {
      (sign == '+' ? policy.add : policy.remove).push_back(name);
    }
    first = false;
  }
  return policy;
}

Result<std::vector<kvm_cpuid_entry2>> apply_policy(std::vector<kvm_cpuid_entry2> entries,
                                                   const CpuPolicy& policy) {
  std::vector<kvm_cpuid_entry2> supported = entries;
  if (policy.name == "baseline") {
    for (const char* name : kBaselineRemoved) clear_feature(entries, name);
  }
  for (const std::string& name : policy.add) {
    if (!has_feature(supported, name)) {
      return Error(Errc::kUnsupported,
                   fmt::format("--cpu-features: +{} is not supported by this host's KVM", name));
    }
    const CpuFeature* f = find_feature(name);
    *reg_of(*find_entry(entries, f->leaf, f->subleaf), f->reg) |= 1u << f->bit;
  }
  for (const std::string& name : policy.remove) clear_feature(entries, name);
  return entries;
}

std::vector<kvm_cpuid_entry2> for_vcpu(std::vector<kvm_cpuid_entry2> entries, uint32_t apic_id,
                                       uint32_t num_cpus) {
  for (auto& e : entries) {
    switch (e.function) {
      case 1:
        // EBX[31:24] initial APIC id, [23:16] logical processors per package; ECX[31] hypervisor.
        e.ebx = (apic_id << 24) | (std::min(num_cpus, 255u) << 16) | (e.ebx & 0xffff);
        e.ecx |= 1u << 31;
        if (num_cpus > 1) e.edx |= 1u << 28;  // HTT: the logical count above is meaningful
        break;
      case 0xb:
      case 0x1f:
        // x2APIC topology: one thread per core, all cores in one package.
        e.edx = apic_id;
        if (e.index == 0) {
          e.eax = 0;
          e.ebx = 1;
          e.ecx = (1u << 8) | 0;
        } else if (e.index == 1) {
          uint32_t shift = 0;
          while ((1u << shift) < num_cpus) ++shift;
          e.eax = shift;
          e.ebx = num_cpus;
          e.ecx = (2u << 8) | 1;
        } else {
          e.eax = e.ebx = 0;
          e.ecx = e.index;
        }
        break;
      default:
        break;
    }
  }
  return entries;
}

bool has_feature(const std::vector<kvm_cpuid_entry2>& entries, std::string_view name) {
  const CpuFeature* f = find_feature(name);
  if (!f) return false;
  auto copy = entries;
  kvm_cpuid_entry2* e = find_entry(copy, f->leaf, f->subleaf);
  return e && (*reg_of(*e, f->reg) >> f->bit) & 1;
}

}  // namespace ioasis::x86
