// IOASID manager figures: map and unmap latency with 1k, 100k and 1M mappings in one address
// space, and DMA translations per second through a device's view with and without its IOTLB.
#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <memory>
#include <numeric>
#include <random>
#include <string_view>
#include <vector>

#include "iommu/backends/software.h"
#include "iommu/dma_view.h"
#include "iommu/ioasid_context.h"

namespace ioasis::iommu {
namespace {

// Thread CPU time rather than wall time: the build machines are shared, and time spent
// descheduled says nothing about the code.
struct Clock {
  using time_point = double;
  static double now() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
  }
};

double ns_since(double t0) { return Clock::now() - t0; }

constexpr uint64_t kIovaBase = 0x100000000;
constexpr uint64_t kHvaBase = 0x7f0000000000;
// Mappings are one page each, every other IOVA page, so that neighbours never merge in any
// structure and each map or unmap is a real insertion or removal.
Iova iova_of(uint64_t i) { return Iova(kIovaBase + i * 2 * kPageSize); }
HostRange host_of(uint64_t i) { return HostRange{Hva(kHvaBase + i * kPageSize), kPageSize}; }

struct Figures {
  double fill_ns;
  double map_ns;
  double unmap_ns;
  double cached_lookups;
  double uncached_lookups;
  double cold_iotlb_lookups;
};

double lookups_per_second(DmaView& view, const std::vector<uint64_t>& pages, int rounds) {
  uint64_t sink = 0;
  auto t0 = Clock::now();
  for (int r = 0; r < rounds; ++r) {
    for (uint64_t p : pages) {
      auto span = view.translate(Iova(iova_of(p).value + 64), 8, Access::kRead);
      sink += span.ok() ? span->hva.value : 1;
    }
  }
  double ns = ns_since(t0);
  if (sink == 42) fmt::print("");  // keeps the loop from being optimized away
  return static_cast<double>(pages.size()) * rounds / (ns * 1e-9);
}

Figures measure(uint64_t n, bool with_lookups) {
  IoasidContext ctx;
  IoasId ioas = *ctx.create_ioas(IoasKind::kHostManaged);
  DeviceId dev = *ctx.join(DeviceSpec{"bench", std::nullopt, std::make_shared<SoftwareBackend>()});
  (void)ctx.attach(dev, ioas);
  Figures f{};

  auto t0 = Clock::now();
  for (uint64_t i = 0; i < n; ++i) (void)ctx.map(ioas, iova_of(i), host_of(i), Perm::kReadWrite);
  f.fill_ns = ns_since(t0) / n;

  // Steady state at n mappings: remove and restore random ones.
  std::mt19937_64 rng(1);
  constexpr int kOps = 200000;
  std::vector<uint64_t> victims(kOps);
  for (auto& v : victims) v = rng() % n;
  std::sort(victims.begin(), victims.end());
  victims.erase(std::unique(victims.begin(), victims.end()), victims.end());
  std::shuffle(victims.begin(), victims.end(), rng);
  t0 = Clock::now();
  for (uint64_t v : victims) (void)ctx.unmap(ioas, iova_of(v), kPageSize);
  f.unmap_ns = ns_since(t0) / victims.size();
  t0 = Clock::now();
  for (uint64_t v : victims) (void)ctx.map(ioas, iova_of(v), host_of(v), Perm::kReadWrite);
  f.map_ns = ns_since(t0) / victims.size();

  if (!with_lookups) return f;
  auto view = std::move(*ctx.dma_view(dev));
  // A device's working set: a ring and its buffers, 64 neighbouring mappings.
  std::vector<uint64_t> hot(64);
  std::iota(hot.begin(), hot.end(), n / 2);
  std::vector<uint64_t> cold(1 << 16);
  for (auto& p : cold) p = rng() % n;
  f.cached_lookups = lookups_per_second(*view, hot, 200000);
  f.cold_iotlb_lookups = lookups_per_second(*view, cold, 20);
  view->set_iotlb_enabled(false);
  f.uncached_lookups = lookups_per_second(*view, cold, 20);
  return f;
}

}  // namespace
}  // namespace ioasis::iommu

// `bench_iommu --no-lookups` measures map and unmap only, for profiling them.
int main(int argc, char** argv) {
  bool with_lookups = !(argc > 1 && std::string_view(argv[1]) == "--no-lookups");
  using ioasis::iommu::measure;
  fmt::print("{:>10} {:>12} {:>12} {:>12} {:>18} {:>18} {:>18}\n", "mappings", "fill ns/op",
             "map ns/op", "unmap ns/op", "IOTLB hot /s", "IOTLB cold /s", "no IOTLB /s");
  for (uint64_t n : {uint64_t{1000}, uint64_t{100000}, uint64_t{1000000}}) {
    auto f = measure(n, with_lookups);
    fmt::print("{:>10} {:>12.0f} {:>12.0f} {:>12.0f} {:>18.3e} {:>18.3e} {:>18.3e}\n", n, f.fill_ns,
               f.map_ns, f.unmap_ns, f.cached_lookups, f.cold_iotlb_lookups, f.uncached_lookups);
  }
  return 0;
}
