// Randomized model test: a long random sequence of map, unmap, copy and attach operations, each
// checked against a deliberately naive reference model of what the context must answer and
// hold, and followed by a check of every statistic and of translations through devices' views.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "iommu/backends/software.h"
#include "iommu/dma_view.h"
#include "iommu/ioasid_context.h"

namespace ioasis::iommu {
namespace {

constexpr uint64_t kPage = kPageSize;
constexpr uint64_t kHostPages = 32;
constexpr uint64_t kPinLimitPages = 24;
constexpr int kSpaces = 3;
constexpr int kDevices = 3;
const uint64_t kHostBase = 0x7f0000000000;

struct ModelMapping {
  uint64_t last;
  uint64_t hva;
  Perm perm;
};
using ModelSpace = std::map<uint64_t, ModelMapping>;

class Model {
 public:
  ModelSpace space[kSpaces];

  bool overlaps(int s, uint64_t first, uint64_t last) const {
    for (const auto& [f, m] : space[s]) {
      if (f <= last && first <= m.last) return true;
    }
    return false;
  }
  std::map<uint64_t, int> host_pages() const {
    std::map<uint64_t, int> pages;
    for (const auto& sp : space) {
      for (const auto& [f, m] : sp) {
        for (uint64_t off = 0; off <= m.last - f; off += kPage) pages[m.hva + off]++;
      }
    }
    return pages;
  }
  uint64_t new_pages(uint64_t hva, uint64_t len) const {
    auto pages = host_pages();
    uint64_t n = 0;
    for (uint64_t off = 0; off < len; off += kPage) n += pages.count(hva + off) == 0;
    return n;
  }
  const ModelMapping* find(int s, uint64_t iova, uint64_t* first) const {
    for (const auto& [f, m] : space[s]) {
      if (f <= iova && iova <= m.last) {
        *first = f;
        return &m;
      }
    }
    return nullptr;
  }
};

class ModelTest : public ::testing::TestWithParam<uint32_t> {
 protected:
  void SetUp() override {
    for (int i = 0; i < kSpaces; ++i) ioas_[i] = *ctx_.create_ioas(IoasKind::kGuestDomain);
    for (int i = 0; i < kDevices; ++i) {
      dev_[i] = *ctx_.join(
          DeviceSpec{"dev" + std::to_string(i), std::nullopt, std::make_shared<SoftwareBackend>()});
      view_[i] = std::move(*ctx_.dma_view(dev_[i]));
    }
  }

  uint64_t rnd(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_); }
  Perm rnd_perm() { return static_cast<Perm>(1 + rnd(3)); }

  void do_map();
  void do_unmap();
  void do_copy();
  void do_attach();
  void check();

  IoasidContext ctx_{ContextOptions{.pinned_limit = kPinLimitPages * kPage}};
  IoasId ioas_[kSpaces];
  DeviceId dev_[kDevices];
  std::unique_ptr<DmaView> view_[kDevices];
  int attached_[kDevices] = {-1, -1, -1};
  int done_maps_ = 0, done_unmaps_ = 0, done_copies_ = 0, refused_ = 0;
  Model model_;
  std::mt19937_64 rng_{GetParam()};
};

void ModelTest::do_map() {
  int s = static_cast<int>(rnd(kSpaces));
  uint64_t len = (1 + rnd(4)) * kPage;
  uint64_t hva = kHostBase + rnd(kHostPages - 4) * kPage;
  Perm perm = rnd_perm();
  bool fixed = rnd(4) != 0;
  uint64_t iova = rnd(64) * kPage;
  auto r = ctx_.map(ioas_[s], fixed ? std::optional(Iova(iova)) : std::nullopt,
                    HostRange{Hva(hva), len}, perm);
  uint64_t new_bytes = model_.new_pages(hva, len) * kPage;
  uint64_t pinned = model_.host_pages().size() * kPage;
  if (fixed && model_.overlaps(s, iova, iova + len - 1)) {
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(r.error().code(), Errc::kAlreadyExists);
    return;
  }
  if (pinned + new_bytes > kPinLimitPages * kPage) {
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(r.error().code(), Errc::kResourceExhausted);
    refused_++;
    return;
  }
  ASSERT_TRUE(r.ok()) << r.error().message();
  done_maps_++;
  if (fixed) {
    ASSERT_EQ(r->value, iova);
  }
  ASSERT_FALSE(model_.overlaps(s, r->value, r->value + len - 1));
  model_.space[s][r->value] = ModelMapping{r->value + len - 1, hva, perm};
}

void ModelTest::do_unmap() {
  int s = static_cast<int>(rnd(kSpaces));
  bool all = rnd(20) == 0;
  uint64_t iova = all ? 0 : rnd(64) * kPage;
  uint64_t len = all ? UINT64_MAX : (1 + rnd(8)) * kPage;
  uint64_t last = all ? UINT64_MAX : iova + len - 1;
  auto r = ctx_.unmap(ioas_[s], Iova(iova), len);
  bool split = false;
  uint64_t bytes = 0;
  std::vector<uint64_t> gone;
  for (const auto& [f, m] : model_.space[s]) {
    if (f > last || m.last < iova) continue;
    if (f < iova || m.last > last) split = true;
    bytes += m.last - f + 1;
    gone.push_back(f);
  }
  if (split) {
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(r.error().code(), Errc::kInvalidArgument);
  } else if (gone.empty() && !all) {
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(r.error().code(), Errc::kNotFound);
  } else {
    ASSERT_TRUE(r.ok()) << r.error().message();
    ASSERT_EQ(*r, bytes);
    for (uint64_t f : gone) model_.space[s].erase(f);
    done_unmaps_++;
  }
}

void ModelTest::do_copy() {
  int src = static_cast<int>(rnd(kSpaces));
  int dst = static_cast<int>(rnd(kSpaces));
  uint64_t src_iova = rnd(64) * kPage;
  uint64_t len = (1 + rnd(4)) * kPage;
  uint64_t dst_iova = rnd(64) * kPage + 0x1000000;
  auto r = ctx_.copy(ioas_[src], Iova(src_iova), ioas_[dst], Iova(dst_iova), len);
  std::vector<std::pair<uint64_t, ModelMapping>> pieces;
  for (uint64_t cursor = src_iova; cursor < src_iova + len;) {
    uint64_t first;
    const ModelMapping* m = model_.find(src, cursor, &first);
    if (!m) {
      ASSERT_FALSE(r.ok());
      ASSERT_EQ(r.error().code(), Errc::kNotFound);
      return;
    }
    uint64_t piece_last = std::min(m->last, src_iova + len - 1);
    pieces.push_back(
        {dst_iova + (cursor - src_iova),
         ModelMapping{dst_iova + (piece_last - src_iova), m->hva + (cursor - first), m->perm}});
    cursor = piece_last + 1;
  }
  if (model_.overlaps(dst, dst_iova, dst_iova + len - 1)) {
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(r.error().code(), Errc::kAlreadyExists);
    return;
  }
  ASSERT_TRUE(r.ok()) << r.error().message();
  for (const auto& [f, m] : pieces) model_.space[dst][f] = m;
  done_copies_++;
}

void ModelTest::do_attach() {
  int d = static_cast<int>(rnd(kDevices));
  int s = static_cast<int>(rnd(kSpaces));
  if (attached_[d] < 0) {
    ASSERT_TRUE(ctx_.attach(dev_[d], ioas_[s]).ok());
    attached_[d] = s;
  } else if (rnd(2)) {
    ASSERT_TRUE(ctx_.replace(dev_[d], ioas_[s]).ok());
    attached_[d] = s;
  } else {
    ASSERT_TRUE(ctx_.detach(dev_[d]).ok());
    attached_[d] = -1;
  }
}

void ModelTest::check() {
  uint64_t mappings = 0;
  for (int s = 0; s < kSpaces; ++s) {
    auto st = *ctx_.stats(ioas_[s]);
    ASSERT_EQ(st.mappings, model_.space[s].size());
    mappings += st.mappings;
  }
  ASSERT_EQ(ctx_.stats().mappings, mappings);
  ASSERT_EQ(ctx_.stats().pinned_bytes, model_.host_pages().size() * kPage);
  for (int d = 0; d < kDevices; ++d) {
    for (int probe = 0; probe < 4; ++probe) {
      uint64_t iova = rnd(64) * kPage + rnd(kPage);
      if (rnd(2)) iova += 0x1000000;
      Access access = rnd(2) ? Access::kRead : Access::kWrite;
      auto r = view_[d]->translate(Iova(iova), 1, access);
      if (attached_[d] < 0) {
        ASSERT_FALSE(r.ok());
        ASSERT_EQ(r.fault().reason, FaultReason::kNotAttached);
        continue;
      }
      uint64_t first;
      const ModelMapping* m = model_.find(attached_[d], iova, &first);
      if (!m) {
        ASSERT_FALSE(r.ok());
        ASSERT_EQ(r.fault().reason, FaultReason::kUnmapped);
      } else if (!has_perm(m->perm, access == Access::kRead ? Perm::kRead : Perm::kWrite)) {
        ASSERT_FALSE(r.ok());
        ASSERT_EQ(r.fault().reason, FaultReason::kPermission);
      } else {
        ASSERT_TRUE(r.ok());
        ASSERT_EQ(r->hva.value, m->hva + (iova - first));
      }
    }
  }
}

TEST_P(ModelTest, RandomOperationsMatchTheReferenceModel) {
  for (int step = 0; step < 20000; ++step) {
    switch (rnd(8)) {
      case 0:
      case 1:
      case 2:
        ASSERT_NO_FATAL_FAILURE(do_map());
        break;
      case 3:
      case 4:
        ASSERT_NO_FATAL_FAILURE(do_unmap());
        break;
      case 5:
      case 6:
        ASSERT_NO_FATAL_FAILURE(do_copy());
        break;
      default:
        ASSERT_NO_FATAL_FAILURE(do_attach());
        break;
    }
    ASSERT_NO_FATAL_FAILURE(check()) << "after step " << step;
  }
  // The sequence must have exercised the successful paths and the pin limit, not only refusals.
  EXPECT_GT(done_maps_, 500);
  EXPECT_GT(done_unmaps_, 200);
  EXPECT_GT(done_copies_, 200);
  EXPECT_GT(refused_, 10);
}

INSTANTIATE_TEST_SUITE_P(Seeds, ModelTest, ::testing::Values(1u, 2u, 3u, 42u));

}  // namespace
}  // namespace ioasis::iommu
