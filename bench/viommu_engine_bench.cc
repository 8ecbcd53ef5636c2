// virtio-iommu device-side figures: MAP+UNMAP round trips per second through the request parser
// and engine (the work the device does per request, without the guest and the ring), with
// 0, 1k and 100k other mappings already in the domain, and with an endpoint's IOTLB warm on the
// page each time (so that every UNMAP has a cached translation to retire).
#include <fmt/format.h>
#include <sys/mman.h>

#include <cstring>
#include <ctime>
#include <memory>
#include <vector>

#include "base/fd.h"
#include "devices/virtio/iommu_engine.h"
#include "iommu/backends/software.h"
#include "iommu/dma_view.h"
#include "iommu/ioasid_context.h"

namespace ioasis::devices::virtio_iommu {
namespace {

// Thread CPU time: the build machines are shared, and time spent descheduled says nothing
// about the code.
double now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

constexpr uint64_t kRam = 64 << 20;
constexpr uint64_t kPage = 0x1000;

template <typename Body>
uint8_t send(IommuEngine& engine, const Body& body) {
  uint8_t bytes[sizeof(Body)];
  std::memcpy(bytes, &body, sizeof(Body));
  auto reply = engine.handle(bytes, sizeof(ReqTail));
  return reply ? reply->status() : 0xff;
}

struct Setup {
  MappedRegion ram;
  iommu::IoasidContext ctx;
  iommu::DeviceId device;
  std::unique_ptr<IommuEngine> engine;
  std::unique_ptr<iommu::DmaView> view;
};

std::unique_ptr<Setup> make_setup(uint64_t others) {
  auto s = std::make_unique<Setup>();
  s->ram = std::move(
      *MappedRegion::map(kRam, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  iommu::HostRange all{Hva::of(s->ram.data()), kRam};
  auto guest_ram = *s->ctx.create_ioas(iommu::IoasKind::kGuestRam, "guest-ram");
  (void)s->ctx.map(guest_ram, Iova(0), all, iommu::Perm::kReadWrite);
  s->device = *s->ctx.join(
      iommu::DeviceSpec{"blk", std::nullopt, std::make_shared<iommu::SoftwareBackend>()});
  s->engine = std::make_unique<IommuEngine>(s->ctx, guest_ram, GuestRamMap({RamSlice{Gpa(0), all}}),
                                            EngineOptions{.bypass = false});
  s->engine->set_driver_features(s->engine->device_features());
  (void)s->engine->add_endpoint(0x08, s->device);
  (void)send(*s->engine, AttachBody{{kTAttach, {}}, 1, 0x08, 0, {}});
  // Other mappings every other page above the measured one, so the tree has real depth.
  for (uint64_t i = 0; i < others; ++i) {
    uint64_t iova = 0x100000000 + i * 2 * kPage;
    (void)send(
        *s->engine,
        MapBody{
            {kTMap, {}}, 1, iova, iova + kPage - 1, (i % 1024) * kPage, kMapFRead | kMapFWrite});
  }
  s->view = std::move(*s->ctx.dma_view(s->device));
  return s;
}

double round_trips_per_second(Setup& s, bool touch, int iterations) {
  const MapBody map{{kTMap, {}}, 1, 0x10000, 0x10fff, 0x4000, kMapFRead | kMapFWrite};
  const UnmapBody unmap{{kTUnmap, {}}, 1, 0x10000, 0x10fff, {}};
  uint8_t byte;
  double t0 = now_ns();
  for (int i = 0; i < iterations; ++i) {
    if (send(*s.engine, map) != kSOk) return 0;
    if (touch && !s.view->read(Iova(0x10000), &byte, 1).ok()) return 0;
    if (send(*s.engine, unmap) != kSOk) return 0;
  }
  return iterations / ((now_ns() - t0) / 1e9);
}

}  // namespace
}  // namespace ioasis::devices::virtio_iommu

int main() {
  using namespace ioasis::devices::virtio_iommu;
  fmt::print("virtio-iommu engine: MAP+UNMAP round trips per second (thread CPU time)\n");
  fmt::print("{:>16} {:>20} {:>26}\n", "other mappings", "round trips/s",
             "with a DMA in between/s");
  for (uint64_t others : {0ull, 1000ull, 100000ull}) {
    auto s = make_setup(others);
    double plain = round_trips_per_second(*s, false, 200000);
    double touched = round_trips_per_second(*s, true, 200000);
    fmt::print("{:>16} {:>20.3e} {:>26.3e}\n", others, plain, touched);
    if (plain == 0 || touched == 0) return 1;
  }
  return 0;
}
