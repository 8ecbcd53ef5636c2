// Feeds guest-controlled bytes to the virtio-iommu: request parsing and the engine behind it,
// over a real IoasidContext and real memory, interleaved with what else a guest can do (config
// writes, device reset, DMA from endpoints). Checks that every reply stays inside the buffer the
// driver gave and carries a defined status.
//
// Input: a sequence of operations. Each starts with an opcode byte; requests take a readable
// length byte, a 16-bit writable size and that many readable bytes.
#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "base/fd.h"
#include "devices/virtio/iommu_engine.h"
#include "iommu/backends/software.h"
#include "iommu/dma_view.h"
#include "iommu/ioasid_context.h"

namespace {

using namespace ioasis;
using namespace ioasis::devices::virtio_iommu;

constexpr uint64_t kRamSize = 1 << 20;
constexpr uint32_t kEndpoints[] = {0x08, 0x10, 0x18};

class Input {
 public:
  explicit Input(std::span<const uint8_t> bytes) : bytes_(bytes) {}
  bool empty() const { return pos_ >= bytes_.size(); }
  uint8_t u8() { return empty() ? 0 : bytes_[pos_++]; }
  uint16_t u16() { return static_cast<uint16_t>(u8() | (u8() << 8)); }
  std::span<const uint8_t> take(size_t n) {
    n = std::min(n, bytes_.size() - pos_);
    auto out = bytes_.subspan(pos_, n);
    pos_ += n;
    return out;
  }

 private:
  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
};

struct World {
  MappedRegion ram;
  std::unique_ptr<iommu::IoasidContext> ctx = std::make_unique<iommu::IoasidContext>();
  iommu::IoasId guest_ram;
  iommu::DeviceId devices[3];
  std::unique_ptr<IommuEngine> engine;
  std::unique_ptr<iommu::DmaView> views[3];

  bool build(bool bypass) {
    auto mem =
        MappedRegion::map(kRamSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (!mem.ok()) return false;
    ram = std::move(*mem);
    iommu::HostRange all{Hva::of(ram.data()), kRamSize};
    guest_ram = *ctx->create_ioas(iommu::IoasKind::kGuestRam, "guest-ram");
    if (!ctx->map(guest_ram, Iova(0), all, iommu::Perm::kReadWrite).ok()) return false;
    EngineOptions options;
    options.bypass = bypass;
    options.domain_end = 15;  // few domains, so that requests meet each other often
    options.probe_size = 64;
    options.fault_backlog = 8;
    engine = std::make_unique<IommuEngine>(*ctx, guest_ram, GuestRamMap({RamSlice{Gpa(0), all}}),
                                           options);
    for (int i = 0; i < 3; ++i) {
      auto joined = ctx->join(iommu::DeviceSpec{"ep" + std::to_string(i), std::nullopt,
                                                std::make_shared<iommu::SoftwareBackend>()});
      if (!joined.ok()) return false;
      devices[i] = *joined;
      if (!engine->add_endpoint(kEndpoints[i], devices[i]).ok()) return false;
      views[i] = std::move(*ctx->dma_view(devices[i]));
    }
    return true;
  }
};

void check_reply(const std::optional<Reply>& reply, size_t writable) {
  if (!reply) return;
  if (reply->bytes.size() < sizeof(ReqTail) || reply->used_length() > writable) abort();
  if (reply->status() > kSNoMem) abort();
}

// A device's DMA: a page-sized read or write somewhere in the low IOVA space, as emulated
// devices do; faults go to the engine as they would from a device.
void dma(World& w, Input& in) {
  int i = in.u8() % 3;
  uint64_t iova = uint64_t{in.u16()} << 8;
  uint8_t buf[64];
  bool write = in.u8() & 1;
  auto r = write ? w.views[i]->write(Iova(iova), buf, sizeof(buf))
                 : w.views[i]->read(Iova(iova), buf, sizeof(buf));
  if (!r.ok()) w.engine->report_fault(w.devices[i], r.fault());
}

// A well-formed request with small field values, so that requests name the same domains,
// endpoints and pages often enough to build and tear down real state.
std::optional<Reply> structured_request(World& w, Input& in) {
  uint8_t type = in.u8() % 5 + 1;
  uint32_t domain = in.u8() % 20;
  uint32_t endpoint = kEndpoints[in.u8() % 3] + (in.u8() == 0xff ? 1 : 0);
  uint64_t virt = uint64_t{in.u8()} << 12;
  uint64_t pages = in.u8() % 8 + 1;
  uint64_t phys = uint64_t{in.u8()} << 12;
  uint32_t flags = in.u8() % 8;
  std::vector<uint8_t> bytes;
  auto put = [&](const auto& body) {
    bytes.resize(sizeof(body));
    std::memcpy(bytes.data(), &body, sizeof(body));
  };
  switch (type) {
    case kTAttach:
      put(AttachBody{{kTAttach, {}}, domain, endpoint, flags & 1, {}});
      break;
    case kTDetach:
      put(DetachBody{{kTDetach, {}}, domain, endpoint, {}});
      break;
    case kTMap:
      put(MapBody{{kTMap, {}}, domain, virt, virt + pages * 0x1000 - 1, phys, flags});
      break;
    case kTUnmap:
      put(UnmapBody{{kTUnmap, {}}, domain, virt, virt + pages * 0x1000 - 1, {}});
      break;
    default:
      put(ProbeBody{{kTProbe, {}}, endpoint, {}});
      break;
  }
  size_t writable = type == kTProbe ? 64 + sizeof(ReqTail) : sizeof(ReqTail);
  auto reply = w.engine->handle(bytes, writable);
  check_reply(reply, writable);
  if (!reply) abort();  // every well-formed request gets a status
  return reply;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(std::span(data, size));
  World w;
  if (!w.build(in.u8() & 1)) abort();
  w.engine->set_driver_features(uint64_t{in.u8()} | kFVersion1);
  while (!in.empty()) {
    switch (in.u8() % 8) {
      case 0:
        w.engine->write_bypass(in.u8());
        break;
      case 1:
        w.engine->reset();
        w.engine->set_driver_features(uint64_t{in.u8()} | kFVersion1);
        break;
      case 2:
        dma(w, in);
        break;
      case 3:
        while (w.engine->next_fault()) {
        }
        break;
      case 4:
      case 5:
        (void)structured_request(w, in);
        break;
      default: {
        size_t readable = in.u8();
        size_t writable = in.u16() % 1024;
        auto bytes = in.take(readable);
        check_reply(w.engine->handle(bytes, writable), writable);
        break;
      }
    }
  }
  w.engine.reset();
  // The engine must hand the context back as it found it: guest RAM only, nothing attached.
  auto st = w.ctx->stats();
  if (st.address_spaces != 1 || st.attached_devices != 0 || st.mappings != 1) abort();
  return 0;
}
