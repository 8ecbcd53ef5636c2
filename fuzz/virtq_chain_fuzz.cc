// Descriptor-chain walking over guest-controlled rings. The input is the guest's memory (rings,
// descriptor and indirect tables, buffers) plus a few bytes choosing the queue's size, ring
// placement and ring features; the device pops every chain, copies through it and returns it.
// Part of the memory is mapped read-only and the rest of the IOVA space is unmapped, so chains
// that point anywhere exercise the fault paths too.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "devices/virtio/queue.h"
#include "devices/virtio/testing/fake_driver.h"

namespace {

using ioasis::Iova;
using ioasis::devices::virtio::ChainReader;
using ioasis::devices::virtio::ChainWriter;
using ioasis::devices::virtio::Queue;
using ioasis::devices::virtio::QueueSetup;
using ioasis::devices::virtio::testing::FakeGuest;

constexpr uint64_t kGuestBytes = 64 * 1024;
constexpr size_t kControlBytes = 8;

struct Fixture {
  Fixture() {
    // The first 48 KiB read-write, the last 16 KiB read-only: device writes there must fault.
    auto& ctx = guest.context();
    constexpr uint64_t kRw = 48 * 1024;
    (void)ctx.unmap(guest.ioas(), Iova(0), UINT64_MAX);
    (void)ctx.map(guest.ioas(), Iova(FakeGuest::kBase),
                  {ioasis::Hva::of(guest.ptr(FakeGuest::kBase)), kRw},
                  ioasis::iommu::Perm::kReadWrite);
    (void)ctx.map(guest.ioas(), Iova(FakeGuest::kBase + kRw),
                  {ioasis::Hva::of(guest.ptr(FakeGuest::kBase + kRw)), kGuestBytes - kRw},
                  ioasis::iommu::Perm::kRead);
  }
  FakeGuest guest{kGuestBytes};
  std::unique_ptr<ioasis::iommu::DmaView> view = guest.new_view();
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture* f = new Fixture();
  if (size < kControlBytes) return 0;
  std::memset(f->guest.ptr(FakeGuest::kBase), 0, kGuestBytes);
  std::memcpy(f->guest.ptr(FakeGuest::kBase), data + kControlBytes,
              std::min<size_t>(size - kControlBytes, kGuestBytes));

  uint16_t queue_size = static_cast<uint16_t>(1u << (data[0] % 9));  // 1..256
  Queue queue(256);
  QueueSetup& s = queue.setup();
  s.size = queue_size;
  // Ring offsets in 16-byte units inside the guest memory, sometimes past its end.
  s.desc = Iova(FakeGuest::kBase + uint64_t{data[1]} * 16 * 16);
  s.avail = Iova(FakeGuest::kBase + uint64_t{data[2]} * 16 * 16 + (data[4] & 0xe));
  s.used = Iova(FakeGuest::kBase + uint64_t{data[3]} * 16 * 16 + (data[4] & 0xc));
  s.enabled = true;
  if (!queue.validate_setup().ok()) return 0;
  queue.start(data[5] & 1, data[5] & 2);

  std::vector<uint8_t> buffer;
  for (int i = 0; i < 2 * queue_size + 2; ++i) {
    auto chain = queue.pop(*f->view);
    if (!chain.ok() || !chain->has_value()) break;
    const auto& c = **chain;
    buffer.resize(std::min<uint64_t>(c.readable_len, 1 << 20));
    ChainReader reader(c, *f->view);
    (void)reader.read(buffer.data(), buffer.size());
    ChainWriter writer(c, *f->view);
    if (data[6] & 1) (void)writer.skip(writer.remaining() / 2);
    uint64_t n = std::min<uint64_t>(writer.remaining(), buffer.size());
    (void)writer.write(buffer.data(), n);
    if (!queue.add_used(*f->view, c.head, writer.written()).ok()) break;
    (void)queue.needs_interrupt(*f->view);
  }
  (void)queue.take_fault();
  return 0;
}
