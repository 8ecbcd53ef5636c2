#include "iommu/pin_tracker.h"

#include <algorithm>
#include <iterator>

namespace ioasis::iommu::internal {

uint64_t PinTracker::new_bytes(const PinSpan& span) const {
  uint64_t covered = 0;
  auto it = segs_.upper_bound(Key{span.domain, span.start});
  if (it != segs_.begin()) --it;
  for (; it != segs_.end() && it->first.domain == span.domain && it->first.start < span.end; ++it) {
    uint64_t lo = std::max(it->first.start, span.start);
    uint64_t hi = std::min(it->second.end, span.end);
    if (hi > lo) covered += hi - lo;
  }
  return (span.end - span.start) - covered;
}

void PinTracker::split_at(uint32_t domain, uint64_t at) {
  auto it = segs_.upper_bound(Key{domain, at});
  if (it == segs_.begin()) return;
  --it;
  if (it->first.domain != domain || it->first.start >= at || it->second.end <= at) return;
  Seg tail{it->second.end, it->second.refs};
  it->second.end = at;
  segs_.emplace_hint(std::next(it), Key{domain, at}, tail);
}

void PinTracker::pin(const PinSpan& span) {
  if (span.end <= span.start) return;
  split_at(span.domain, span.start);
  split_at(span.domain, span.end);
  // Looked up afresh each round: B-tree insertions invalidate iterators.
  uint64_t cursor = span.start;
  while (cursor < span.end) {
    auto it = segs_.lower_bound(Key{span.domain, cursor});
    bool here = it != segs_.end() && it->first.domain == span.domain;
    if (here && it->first.start == cursor) {
      it->second.refs++;
      cursor = it->second.end;
      continue;
    }
    uint64_t gap_end = here && it->first.start < span.end ? it->first.start : span.end;
    segs_.emplace_hint(it, Key{span.domain, cursor}, Seg{gap_end, 1});
    pinned_ += gap_end - cursor;
    cursor = gap_end;
  }
  merge_around(span);
}

void PinTracker::unpin(const PinSpan& span) {
  if (span.end <= span.start) return;
  split_at(span.domain, span.start);
  split_at(span.domain, span.end);
  auto it = segs_.lower_bound(Key{span.domain, span.start});
  while (it != segs_.end() && it->first.domain == span.domain && it->first.start < span.end) {
    if (--it->second.refs == 0) {
      pinned_ -= it->second.end - it->first.start;
      it = segs_.erase(it);
    } else {
      ++it;
    }
  }
  merge_around(span);
}

// Joins neighbours with equal counts so that mapping guest RAM page by page still leaves one
// segment per contiguous run, keeping lookups logarithmic in runs rather than pages.
void PinTracker::merge_around(const PinSpan& span) {
  auto it = segs_.upper_bound(Key{span.domain, span.start});
  if (it != segs_.begin()) --it;
  if (it != segs_.begin() && std::prev(it)->first.domain == span.domain) --it;
  while (it != segs_.end() && it->first.domain == span.domain && it->first.start <= span.end) {
    auto next = std::next(it);
    if (next != segs_.end() && next->first.domain == span.domain &&
        next->first.start == it->second.end && next->second.refs == it->second.refs) {
      it->second.end = next->second.end;
      it = std::prev(segs_.erase(next));
    } else {
      it = next;
    }
  }
}

}  // namespace ioasis::iommu::internal
