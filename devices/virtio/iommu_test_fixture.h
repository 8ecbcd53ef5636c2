// A virtio-iommu engine over a real IoasidContext with 8 MiB of "guest RAM" at GPA 0 and two
// emulated endpoints, and helpers that send requests as a driver would: as bytes.
#pragma once

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstring>
#include <memory>
#include <vector>

#include "base/fd.h"
#include "devices/virtio/iommu_engine.h"
#include "iommu/backends/software.h"
#include "iommu/dma_view.h"
#include "iommu/ioasid_context.h"

namespace ioasis::devices::virtio_iommu {

inline constexpr uint64_t kRamSize = 8 << 20;
inline constexpr uint32_t kEp1 = 0x08;  // 00:01.0
inline constexpr uint32_t kEp2 = 0x10;  // 00:02.0
inline constexpr uint64_t kPage = 0x1000;

class ViommuEngineTest : public ::testing::Test {
 protected:
  void SetUp() override { start(EngineOptions{.bypass = false}); }

  void start(EngineOptions options, uint64_t features = UINT64_MAX) {
    view1_.reset();
    view2_.reset();
    engine_.reset();
    ctx_ = std::make_unique<iommu::IoasidContext>();
    auto mem =
        MappedRegion::map(kRamSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_TRUE(mem.ok());
    ram_ = std::move(*mem);
    guest_ram_ = *ctx_->create_ioas(iommu::IoasKind::kGuestRam, "guest-ram");
    ASSERT_TRUE(ctx_->map(guest_ram_, Iova(0), host(0, kRamSize), iommu::Perm::kReadWrite).ok());
    for (auto* dev : {&dev1_, &dev2_}) {
      auto joined = ctx_->join(iommu::DeviceSpec{dev == &dev1_ ? "blk0" : "blk1", std::nullopt,
                                                 std::make_shared<iommu::SoftwareBackend>()});
      ASSERT_TRUE(joined.ok());
      *dev = *joined;
    }
    GuestRamMap map({RamSlice{Gpa(0), host(0, kRamSize)}});
    engine_ = std::make_unique<IommuEngine>(*ctx_, guest_ram_, map, options);
    engine_->set_driver_features(features);
    ASSERT_TRUE(engine_->add_endpoint(kEp1, dev1_).ok());
    ASSERT_TRUE(engine_->add_endpoint(kEp2, dev2_).ok());
    view1_ = std::move(*ctx_->dma_view(dev1_));
    view2_ = std::move(*ctx_->dma_view(dev2_));
  }

  iommu::HostRange host(uint64_t offset, uint64_t length) {
    return iommu::HostRange{Hva::of(ram_.data()) + offset, length};
  }

  template <typename Body>
  uint8_t send(const Body& body) {
    std::vector<uint8_t> bytes(sizeof(Body));
    std::memcpy(bytes.data(), &body, sizeof(Body));
    auto reply = engine_->handle(bytes, sizeof(ReqTail));
    EXPECT_TRUE(reply.has_value());
    if (!reply) return 0xff;
    EXPECT_EQ(reply->offset, 0u);
    EXPECT_EQ(reply->bytes.size(), sizeof(ReqTail));
    return reply->status();
  }

  uint8_t attach(uint32_t domain, uint32_t endpoint, uint32_t flags = 0) {
    AttachBody b{};
    b.head.type = kTAttach;
    b.domain = domain;
    b.endpoint = endpoint;
    b.flags = flags;
    return send(b);
  }
  uint8_t detach(uint32_t domain, uint32_t endpoint) {
    DetachBody b{};
    b.head.type = kTDetach;
    b.domain = domain;
    b.endpoint = endpoint;
    return send(b);
  }
  uint8_t map(uint32_t domain, uint64_t virt_start, uint64_t virt_end, uint64_t phys,
              uint32_t flags = kMapFRead | kMapFWrite) {
    MapBody b{};
    b.head.type = kTMap;
    b.domain = domain;
    b.virt_start = virt_start;
    b.virt_end = virt_end;
    b.phys_start = phys;
    b.flags = flags;
    return send(b);
  }
  uint8_t unmap(uint32_t domain, uint64_t virt_start, uint64_t virt_end) {
    UnmapBody b{};
    b.head.type = kTUnmap;
    b.domain = domain;
    b.virt_start = virt_start;
    b.virt_end = virt_end;
    return send(b);
  }

  // True when the endpoint's device can read `iova` through its DMA view.
  bool reachable(iommu::DmaView& view, uint64_t iova) {
    uint8_t byte;
    return view.read(Iova(iova), &byte, 1).ok();
  }
  uint64_t mappings(uint32_t domain) {
    auto ioas = engine_->domain_ioas(domain);
    if (!ioas) return 0;
    return ctx_->stats(*ioas)->mappings;
  }

  MappedRegion ram_;
  std::unique_ptr<iommu::IoasidContext> ctx_;
  iommu::IoasId guest_ram_;
  iommu::DeviceId dev1_, dev2_;
  std::unique_ptr<IommuEngine> engine_;
  std::unique_ptr<iommu::DmaView> view1_, view2_;
};

}  // namespace ioasis::devices::virtio_iommu
