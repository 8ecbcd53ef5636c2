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

bool PinTracker::pin_fast(const PinSpan& span) {
  const uint32_t d = span.domain;
  auto next = segs_.upper_bound(Key{d, span.start});  // first segment starting after span.start
  auto prev = next == segs_.begin() ? segs_.end() : std::prev(next);
  if (prev != segs_.end() && prev->first.domain != d) prev = segs_.end();
  const bool has_next = next != segs_.end() && next->first.domain == d;

  if (prev != segs_.end() && prev->second.end > span.start) {
    // Starts inside `prev`: handled when strictly inside it, so that the raised middle cannot
    // meet a neighbour with the same count.
    if (prev->first.start == span.start || span.end >= prev->second.end) return false;
    Seg tail = prev->second;
    uint32_t refs = prev->second.refs;
    prev->second.end = span.start;
    auto at = segs_.emplace_hint(next, Key{d, span.start}, Seg{span.end, refs + 1});
    segs_.emplace_hint(std::next(at), Key{d, span.end}, tail);
    return true;
  }
  // Starts in a gap: handled when it ends there too, joining neighbours pinned once.
  if (has_next && next->first.start < span.end) return false;
  bool join_prev = prev != segs_.end() && prev->second.end == span.start && prev->second.refs == 1;
  bool join_next = has_next && next->first.start == span.end && next->second.refs == 1;
  pinned_ += span.end - span.start;
  if (join_prev && join_next) {
    prev->second.end = next->second.end;
    segs_.erase(next);
  } else if (join_prev) {
    prev->second.end = span.end;
  } else if (join_next) {
    Seg merged{next->second.end, 1};
    auto hint = segs_.erase(next);
    segs_.emplace_hint(hint, Key{d, span.start}, merged);
  } else {
    segs_.emplace_hint(next, Key{d, span.start}, Seg{span.end, 1});
  }
  return true;
}

bool PinTracker::unpin_fast(const PinSpan& span) {
  const uint32_t d = span.domain;
  auto it = segs_.upper_bound(Key{d, span.start});
  if (it == segs_.begin()) return false;
  --it;
  if (it->first.domain != d || it->second.end < span.end) return false;
  const uint64_t seg_start = it->first.start, seg_end = it->second.end;
  const uint32_t refs = it->second.refs;
  if (seg_start == span.start && seg_end == span.end) {
    if (refs == 1) {
      pinned_ -= seg_end - seg_start;
      segs_.erase(it);
      return true;
    }
    return false;  // the lowered count may now match a neighbour: the general path merges
  }
  if (seg_start >= span.start || span.end >= seg_end) return false;
  // Strictly inside one segment.
  it->second.end = span.start;
  auto hint = std::next(it);
  if (refs == 1) {
    pinned_ -= span.end - span.start;
  } else {
    hint = std::next(segs_.emplace_hint(hint, Key{d, span.start}, Seg{span.end, refs - 1}));
  }
  segs_.emplace_hint(hint, Key{d, span.end}, Seg{seg_end, refs});
  return true;
}

void PinTracker::pin(const PinSpan& span) {
  if (span.end <= span.start || pin_fast(span)) return;
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
  if (span.end <= span.start || unpin_fast(span)) return;
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
