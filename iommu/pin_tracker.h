// Internal: single-pin accounting. A host page that several mappings reach (in one address space
// or many) is counted once. Pages are keyed by the file behind them when there is one (guest RAM
// is a memfd, mapped at different HVAs by different users) and by HVA otherwise.
#pragma once

#include <absl/container/btree_map.h>

#include <compare>
#include <cstddef>
#include <cstdint>

namespace ioasis::iommu::internal {

// A page-aligned span in one key space: domain 0 is this process's virtual addresses, other
// domains are files.
struct PinSpan {
  uint32_t domain = 0;
  uint64_t start = 0;  // inclusive, page aligned
  uint64_t end = 0;    // exclusive, page aligned
};

class PinTracker {
 public:
  // Bytes of `span` not pinned yet: what pin() would add.
  uint64_t new_bytes(const PinSpan& span) const;
  void pin(const PinSpan& span);
  // Drops one reference from every page of `span`; each must have been pinned.
  void unpin(const PinSpan& span);
  uint64_t pinned_bytes() const { return pinned_; }
  size_t segments() const { return segs_.size(); }

 private:
  struct Key {
    uint32_t domain;
    uint64_t start;
    auto operator<=>(const Key&) const = default;
  };
  struct Seg {
    uint64_t end;
    uint32_t refs;
  };
  using Map = absl::btree_map<Key, Seg>;

  // One lookup for the shapes almost every map and unmap has (a span inside one segment or one
  // gap); false, having changed nothing, for the rest.
  bool pin_fast(const PinSpan& span);
  bool unpin_fast(const PinSpan& span);
  void split_at(uint32_t domain, uint64_t at);
  void merge_around(const PinSpan& span);

  Map segs_;
  uint64_t pinned_ = 0;
};

}  // namespace ioasis::iommu::internal
