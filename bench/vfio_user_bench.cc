// vfio-user figures: DMA engine copy bandwidth for 1 MiB copies through vfio-user (zero copy:
// the server mmaps the memfd the client handed over) next to memcpy of the same buffers on the
// same machine, and the DMA_MAP round trip, which is how long a new mapping takes to become
// visible to the device.
//
// The server runs on threads of this process, behind a real UNIX socket; only the scheduling
// differs from the vfio-user-dma-server binary. Wall-clock time, since the copy runs on the
// engine's thread.
#include <fmt/format.h>
#include <poll.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "base/log.h"
#include "devices/vfio/vfio_user_test_util.h"

namespace ioasis::devices::vfio_user {
namespace {

using Clock = std::chrono::steady_clock;
using namespace testing;

constexpr uint64_t kCopy = 1 << 20;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double memcpy_gbps(Memfd& ram, int rounds) {
  auto t0 = Clock::now();
  for (int i = 0; i < rounds; ++i) {
    std::memcpy(ram.at(kCopy), ram.at(0), kCopy);
    asm volatile("" ::: "memory");  // keep every round
  }
  return rounds * double(kCopy) / seconds_since(t0) / 1e9;
}

Result<double> engine_gbps(VfioUserClient& client, const EventFd& irq, int rounds) {
  auto t0 = Clock::now();
  for (int i = 0; i < rounds; ++i) {
    IOASIS_TRY(start_copy(client, 0, kCopy, kCopy));
    pollfd p{irq.fd(), POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) return Error(Errc::kUnavailable, "no completion interrupt");
    IOASIS_TRY(irq.consume());
  }
  double gbps = rounds * double(kCopy) / seconds_since(t0) / 1e9;
  IOASIS_ASSIGN_OR_RETURN(uint32_t status, read_status(client));
  if (status != status_of(DmaState::kDone)) return Error(Errc::kInternal, "copy failed");
  return gbps;
}

// Median DMA_MAP round trip of a 2 MiB range of the memfd, then its DMA_UNMAP.
Result<std::pair<double, double>> map_latency_us(VfioUserClient& client, Memfd& ram, int rounds) {
  std::vector<double> map_us, unmap_us;
  for (int i = 0; i < rounds; ++i) {
    auto t0 = Clock::now();
    IOASIS_TRY(client.dma_map(Iova(0x40000000), ram.range(0, 2 * kCopy), iommu::Perm::kReadWrite));
    map_us.push_back(seconds_since(t0) * 1e6);
    t0 = Clock::now();
    IOASIS_TRY(client.dma_unmap(Iova(0x40000000), 2 * kCopy));
    unmap_us.push_back(seconds_since(t0) * 1e6);
  }
  std::sort(map_us.begin(), map_us.end());
  std::sort(unmap_us.begin(), unmap_us.end());
  return std::make_pair(map_us[map_us.size() / 2], unmap_us[unmap_us.size() / 2]);
}

// Nanoseconds per 4-byte BAR2 read: trapped (one REGION_READ round trip, what every guest access
// to a BAR costs when it is not in the guest map) and through the region's mmap (what a guest
// access costs once the BAR is a memory slot, leaving out the guest's own page walk).
Result<std::pair<double, double>> bar_read_ns(VfioUserClient& client, int rounds) {
  uint32_t word = 0;
  auto t0 = Clock::now();
  for (int i = 0; i < rounds; ++i) {
    IOASIS_TRY(client.region_read(2, (i * 4) % 4096, {reinterpret_cast<uint8_t*>(&word), 4}));
  }
  double trapped = seconds_since(t0) * 1e9 / rounds;
  IOASIS_ASSIGN_OR_RETURN(MappedRegion bar2, client.map_region(2, 0, 4096));
  uint32_t sum = 0;
  t0 = Clock::now();
  for (int i = 0; i < rounds * 100; ++i) {
    sum += *reinterpret_cast<volatile uint32_t*>(bar2.data() + (i * 4) % 4096);
  }
  double direct = seconds_since(t0) * 1e9 / (rounds * 100);
  asm volatile("" : : "r"(sum));  // the loads are used
  return std::make_pair(trapped, direct);
}

int run() {
  spdlog::set_level(spdlog::level::warn);
  ServerOptions options;
  options.socket_path = temp_socket("bench");
  auto server = VfioUserServer::create(options);
  if (!server.ok()) return fmt::print(stderr, "{}\n", server.error().message()), 1;
  (*server)->start();
  auto client = VfioUserClient::connect(options.socket_path);
  if (!client.ok()) return fmt::print(stderr, "{}\n", client.error().message()), 1;
  auto irq = EventFd::create(EFD_NONBLOCK);
  int fds[] = {irq->fd()};
  Memfd ram = Memfd::create(2 * kCopy);
  for (uint64_t i = 0; i < kCopy; ++i) *ram.at(i) = static_cast<uint8_t>(i);
  if (!(*client)->set_irqs(VFIO_PCI_MSIX_IRQ_INDEX, 0, fds).ok() ||
      !(*client)->dma_map(Iova(0), ram.range(0, 2 * kCopy), iommu::Perm::kReadWrite).ok()) {
    return fmt::print(stderr, "setup failed\n"), 1;
  }

  // The machine is shared: trials alternate between the two so that load hits both alike, and
  // the medians are compared.
  constexpr int kRounds = 400;
  constexpr int kTrials = 7;
  (void)memcpy_gbps(ram, 100);  // warm caches and page tables on both sides
  (void)engine_gbps(**client, *irq, 100);
  std::vector<double> mem, engine;
  for (int t = 0; t < kTrials; ++t) {
    mem.push_back(memcpy_gbps(ram, kRounds));
    auto e = engine_gbps(**client, *irq, kRounds);
    if (!e.ok()) return fmt::print(stderr, "{}\n", e.error().message()), 1;
    engine.push_back(*e);
  }
  if (std::memcmp(ram.at(0), ram.at(kCopy), kCopy) != 0) {
    return fmt::print(stderr, "copied data differs\n"), 1;
  }
  std::sort(mem.begin(), mem.end());
  std::sort(engine.begin(), engine.end());
  double mem_gbps = mem[kTrials / 2], engine_median = engine[kTrials / 2];
  fmt::print("1 MiB copies, median of {} trials of {} copies\n", kTrials, kRounds);
  fmt::print("  memcpy in-process          {:7.2f} GB/s\n", mem_gbps);
  fmt::print(
      "  DMA engine via vfio-user   {:7.2f} GB/s  ({:.0f} % of memcpy; doorbell REGION_WRITE "
      "+ MSI-X eventfd per copy)\n",
      engine_median, 100 * engine_median / mem_gbps);

  auto lat = map_latency_us(**client, ram, 500);
  if (!lat.ok()) return fmt::print(stderr, "{}\n", lat.error().message()), 1;
  fmt::print("DMA_MAP of 2 MiB (memfd + offset), median of 500\n");
  fmt::print("  map-to-visible (DMA_MAP round trip)  {:7.1f} us\n", lat->first);
  fmt::print("  DMA_UNMAP round trip                 {:7.1f} us\n", lat->second);

  auto bar = bar_read_ns(**client, 20000);
  if (!bar.ok()) return fmt::print(stderr, "{}\n", bar.error().message()), 1;
  fmt::print("4-byte BAR2 read, mean\n");
  fmt::print("  trapped (REGION_READ round trip)     {:9.1f} ns\n", bar->first);
  fmt::print("  mmapped (BAR in the guest map)       {:9.1f} ns\n", bar->second);
  return 0;
}

}  // namespace
}  // namespace ioasis::devices::vfio_user

int main() { return ioasis::devices::vfio_user::run(); }
