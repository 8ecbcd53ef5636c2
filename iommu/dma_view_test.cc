#include "iommu/dma_view.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "base/fd.h"
#include "iommu/backends/software.h"
#include "iommu/ioasid_context.h"

namespace ioasis::iommu {
namespace {

class DmaViewTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto mem = MappedRegion::map(kMem, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_TRUE(mem.ok());
    mem_ = std::move(*mem);
    ioas_ = *ctx_.create_ioas(IoasKind::kGuestDomain);
    dev_ = *ctx_.join(DeviceSpec{"virtio-blk", std::nullopt, std::make_shared<SoftwareBackend>()});
    ASSERT_TRUE(ctx_.attach(dev_, ioas_).ok());
    view_ = std::move(*ctx_.dma_view(dev_));
  }
  HostRange host(uint64_t offset, uint64_t length) {
    return HostRange{Hva::of(mem_.data()) + offset, length};
  }

  static constexpr uint64_t kMem = 0x10000;
  MappedRegion mem_;
  IoasidContext ctx_;
  IoasId ioas_;
  DeviceId dev_;
  std::unique_ptr<DmaView> view_;
};

TEST_F(DmaViewTest, TranslatesIntoTheMappedHostMemory) {
  ASSERT_TRUE(ctx_.map(ioas_, Iova(0x100000), host(0x2000, 0x2000), Perm::kReadWrite).ok());
  auto span = view_->translate(Iova(0x100010), 0x100, Access::kRead);
  ASSERT_TRUE(span.ok());
  EXPECT_EQ(span->hva, Hva::of(mem_.data() + 0x2010));
  EXPECT_EQ(span->length, 0x100u);
}

TEST_F(DmaViewTest, SpanStopsAtTheEndOfTheMapping) {
  ASSERT_TRUE(ctx_.map(ioas_, Iova(0x100000), host(0, 0x1000), Perm::kRead).ok());
  ASSERT_TRUE(ctx_.map(ioas_, Iova(0x101000), host(0x8000, 0x1000), Perm::kRead).ok());
  auto span = view_->translate(Iova(0x100f00), 0x200, Access::kRead);
  ASSERT_TRUE(span.ok());
  EXPECT_EQ(span->length, 0x100u);
  std::memset(mem_.data(), 0xaa, 0x1000);
  std::memset(mem_.data() + 0x8000, 0xbb, 0x1000);
  uint8_t buf[0x200];
  ASSERT_TRUE(view_->read(Iova(0x100f00), buf, sizeof(buf)).ok());
  EXPECT_EQ(buf[0xff], 0xaa);
  EXPECT_EQ(buf[0x100], 0xbb);
}

TEST_F(DmaViewTest, WriteHelperStoresIntoHostMemory) {
  ASSERT_TRUE(ctx_.map(ioas_, Iova(0x100000), host(0x3000, 0x1000), Perm::kWrite).ok());
  const char msg[] = "hello";
  ASSERT_TRUE(view_->write(Iova(0x100004), msg, sizeof(msg)).ok());
  EXPECT_STREQ(reinterpret_cast<char*>(mem_.data() + 0x3004), "hello");
}

TEST_F(DmaViewTest, FaultCarriesIovaAccessAndReason) {
  ASSERT_TRUE(ctx_.map(ioas_, Iova(0x100000), host(0, 0x1000), Perm::kRead).ok());
  auto unmapped = view_->translate(Iova(0x200008), 8, Access::kRead);
  ASSERT_FALSE(unmapped.ok());
  EXPECT_EQ(unmapped.fault().iova, Iova(0x200008));
  EXPECT_EQ(unmapped.fault().reason, FaultReason::kUnmapped);
  uint32_t v = 1;
  auto denied = view_->write(Iova(0x100010), &v, sizeof(v));
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.fault().access, Access::kWrite);
  EXPECT_EQ(denied.fault().reason, FaultReason::kPermission);
  EXPECT_EQ(denied.fault().to_error().code(), Errc::kPermissionDenied);
  EXPECT_NE(denied.fault().to_string().find("0x100010"), std::string::npos);
}

TEST_F(DmaViewTest, RepeatedLookupsHitTheIotlb) {
  ASSERT_TRUE(ctx_.map(ioas_, Iova(0x100000), host(0, 0x4000), Perm::kRead).ok());
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(view_->translate(Iova(0x100000 + i * 8), 8, Access::kRead).ok());
  EXPECT_EQ(view_->iotlb_misses(), 1u);
  EXPECT_EQ(view_->iotlb_hits(), 9u);
}

TEST_F(DmaViewTest, UnmapInvalidatesACachedTranslation) {
  ASSERT_TRUE(ctx_.map(ioas_, Iova(0x100000), host(0, 0x1000), Perm::kRead).ok());
  ASSERT_TRUE(view_->translate(Iova(0x100000), 8, Access::kRead).ok());
  ASSERT_TRUE(view_->translate(Iova(0x100000), 8, Access::kRead).ok());
  EXPECT_EQ(view_->iotlb_hits(), 1u);
  ASSERT_TRUE(ctx_.unmap(ioas_, Iova(0x100000), 0x1000).ok());
  auto r = view_->translate(Iova(0x100000), 8, Access::kRead);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.fault().reason, FaultReason::kUnmapped);
}

TEST_F(DmaViewTest, ReplaceAndDetachRedirectTheView) {
  IoasId other = *ctx_.create_ioas(IoasKind::kGuestDomain);
  ASSERT_TRUE(ctx_.map(ioas_, Iova(0x100000), host(0, 0x1000), Perm::kRead).ok());
  ASSERT_TRUE(ctx_.map(other, Iova(0x100000), host(0x5000, 0x1000), Perm::kRead).ok());
  ASSERT_EQ(view_->translate(Iova(0x100000), 8, Access::kRead)->hva, Hva::of(mem_.data()));
  ASSERT_TRUE(ctx_.replace(dev_, other).ok());
  EXPECT_EQ(view_->translate(Iova(0x100000), 8, Access::kRead)->hva, Hva::of(mem_.data() + 0x5000));
  ASSERT_TRUE(ctx_.detach(dev_).ok());
  auto r = view_->translate(Iova(0x100000), 8, Access::kRead);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.fault().reason, FaultReason::kNotAttached);
}

TEST_F(DmaViewTest, WithoutIotlbEveryLookupWalksTheTable) {
  view_->set_iotlb_enabled(false);
  ASSERT_TRUE(ctx_.map(ioas_, Iova(0x100000), host(0, 0x1000), Perm::kRead).ok());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(view_->translate(Iova(0x100000), 8, Access::kRead).ok());
  EXPECT_EQ(view_->iotlb_hits(), 0u);
  EXPECT_EQ(view_->iotlb_misses(), 4u);
}

// Device threads translate while the control thread maps and unmaps the same IOVAs, alternating
// the host memory behind them. A translation that starts after an unmap (or a remap) completed
// must never return the old host address.
TEST_F(DmaViewTest, LookupsNeverReturnATranslationRemovedBeforeTheyStarted) {
  constexpr int kPages = 4;
  constexpr int kReaders = 2;
  constexpr uint64_t kBase = 0x100000;
  // state = version * 4 + phase, phase 0: unmapped, 1: mapping, 2: mapped, 3: unmapping. Every
  // store makes it larger, so equal loads around a lookup mean nothing changed in between.
  std::atomic<uint64_t> state[kPages];
  for (auto& s : state) s.store(0);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> checked{0};
  std::atomic<int> failures{0};
  auto hva_for = [&](int page, uint64_t version) {
    return Hva::of(mem_.data()) + (version % 2) * 0x8000 + page * 0x1000;
  };
  std::atomic<int> ready{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < kReaders; ++t) {
    readers.emplace_back([&] {
      auto view = std::move(*ctx_.dma_view(dev_));
      ready++;
      // One pass more after the writer stopped, so that a reader the scheduler kept waiting
      // still checks something.
      for (bool last = false; !last;) {
        last = stop.load();
        for (int p = 0; p < kPages; ++p) {
          uint64_t before = state[p].load(std::memory_order_acquire);
          auto r = view->translate(Iova(kBase + p * 0x1000), 8, Access::kRead);
          uint64_t after = state[p].load(std::memory_order_acquire);
          if (before != after || before % 2 == 1) continue;  // raced with a change
          bool mapped = before % 4 == 2;
          bool good = mapped ? (r.ok() && r->hva == hva_for(p, before / 4)) : !r.ok();
          if (!good) failures++;
          checked++;
        }
      }
    });
  }
  std::thread writer([&] {
    while (ready.load() < kReaders) std::this_thread::yield();
    for (uint64_t v = 0; v < 2000; ++v) {
      for (int p = 0; p < kPages; ++p) {
        state[p].store(v * 4 + 1, std::memory_order_release);
        ASSERT_TRUE(
            ctx_.map(ioas_, Iova(kBase + p * 0x1000), HostRange{hva_for(p, v), 0x1000}, Perm::kRead)
                .ok());
        state[p].store(v * 4 + 2, std::memory_order_release);
      }
      for (int p = 0; p < kPages; ++p) {
        state[p].store(v * 4 + 3, std::memory_order_release);
        ASSERT_TRUE(ctx_.unmap(ioas_, Iova(kBase + p * 0x1000), 0x1000).ok());
        state[p].store((v + 1) * 4, std::memory_order_release);
      }
    }
  });
  writer.join();
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(checked.load(), 0u);
}

}  // namespace
}  // namespace ioasis::iommu
