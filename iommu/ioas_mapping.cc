// Map, unmap and copy, and the IOVA bookkeeping behind them (reserved, allowed, allocation).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <bit>

#include "iommu/context_state.h"
#include "iommu/ioasid_context.h"

namespace ioasis::iommu {

using internal::Ioas;
using internal::MapEntry;
using internal::Piece;

namespace internal {

std::vector<IovaRange> subtract(std::vector<IovaRange> ranges, const std::vector<Reserved>& holes) {
  for (const Reserved& h : holes) {
    std::vector<IovaRange> next;
    for (const IovaRange& r : ranges) {
      if (!r.intersects(h.range)) {
        next.push_back(r);
        continue;
      }
      if (r.first < h.range.first) next.push_back({r.first, h.range.first - 1});
      if (h.range.last < r.last) next.push_back({h.range.last + 1, r.last});
    }
    ranges = std::move(next);
  }
  std::sort(ranges.begin(), ranges.end());
  return ranges;
}

}  // namespace internal

namespace {

constexpr uint64_t kMaxAutoAlign = uint64_t{1} << 30;
const IovaRange kAllIovas{Iova(0), Iova(UINT64_MAX)};

// Rounds up to a power of two; false when that passes 2^64.
bool align_up(uint64_t v, uint64_t align, uint64_t* out) {
  uint64_t r = (v + align - 1) & ~(align - 1);
  if (r < v) return false;
  *out = r;
  return true;
}

// Like iommufd, an automatic IOVA keeps the alignment the host memory has (up to the size of
// the mapping), so that huge host pages can become huge IOMMU pages.
uint64_t auto_alignment(uint64_t base, uint64_t length, uint64_t hva) {
  uint64_t a = std::bit_floor(length);
  if (hva != 0) a = std::min(a, hva & (~hva + 1));
  return std::max(base, std::min(a, kMaxAutoAlign));
}

// The lowest IOVA >= lower in `window` where `length` bytes fit between existing mappings.
std::optional<uint64_t> first_fit(const Ioas& x, IovaRange window, uint64_t lower, uint64_t length,
                                  uint64_t align) {
  const auto& entries = x.table->entries;
  uint64_t cand;
  if (!align_up(std::max(window.first.value, lower), align, &cand)) return std::nullopt;
  while (cand <= window.last.value && window.last.value - cand >= length - 1) {
    auto it = entries.upper_bound(cand);
    if (it != entries.begin() && std::prev(it)->second.last >= cand) --it;
    if (it == entries.end() || it->first > cand + (length - 1)) return cand;
    if (it->second.last == UINT64_MAX || !align_up(it->second.last + 1, align, &cand)) break;
  }
  return std::nullopt;
}

Result<void> check_fixed(const Ioas& x, uint64_t first, uint64_t last) {
  IovaRange want{Iova(first), Iova(last)};
  for (const auto& r : x.reserved) {
    if (r.range.intersects(want)) {
      return Error(Errc::kInvalidArgument,
                   fmt::format("IOVA range {} of {} intersects reserved range {}", to_string(want),
                               internal::describe(x.info.id), to_string(r.range)));
    }
  }
  auto it = x.table->entries.upper_bound(last);
  if (it != x.table->entries.begin() && std::prev(it)->second.last >= first) {
    --it;
    return Error(Errc::kAlreadyExists,
                 fmt::format("IOVA range {} of {} overlaps mapping {}", to_string(want),
                             internal::describe(x.info.id),
                             to_string({Iova(it->first), Iova(it->second.last)})));
  }
  return {};
}

Result<void> check_host(const HostRange& host, Perm perm) {
  if (host.length == 0) return Error(Errc::kInvalidArgument, "mapping length is zero");
  if (perm == Perm::kNone) return Error(Errc::kInvalidArgument, "mapping grants no access");
  if ((host.hva.value | host.fd_offset) & (kPageSize - 1)) {
    return Error(Errc::kInvalidArgument, "host memory must be page aligned");
  }
  if (!range_fits(host.hva.value, host.length) ||
      (host.fd >= 0 && !range_fits(host.fd_offset, host.length))) {
    return Error(Errc::kInvalidArgument, "host range wraps past 2^64");
  }
  return {};
}

}  // namespace

Result<uint64_t> IoasidContext::State::place(Ioas& x, std::optional<Iova> iova, uint64_t length,
                                             uint64_t hva) {
  uint64_t align = alignment(x);
  if (length % align) {
    return Error(Errc::kInvalidArgument,
                 fmt::format("length {:#x} is not a multiple of the IOVA alignment {:#x} of {}",
                             length, align, internal::describe(x.info.id)));
  }
  if (iova) {
    if (iova->value % align) {
      return Error(Errc::kInvalidArgument,
                   fmt::format("IOVA {:#x} is not aligned to {:#x}", iova->value, align));
    }
    if (!range_fits(iova->value, length)) {
      return Error(Errc::kInvalidArgument, "IOVA range wraps past 2^64");
    }
    IOASIS_TRY(check_fixed(x, iova->value, iova->value + (length - 1)));
    return iova->value;
  }
  uint64_t a = auto_alignment(align, length, hva);
  auto windows =
      internal::subtract(x.allowed.empty() ? std::vector{kAllIovas} : x.allowed, x.reserved);
  // Next fit first: allocation after allocation then costs one tree lookup, not a scan.
  for (uint64_t lower : {x.alloc_hint, uint64_t{0}}) {
    for (const IovaRange& w : windows) {
      if (w.last.value < lower) continue;
      if (auto at = first_fit(x, w, lower, length, a)) {
        x.alloc_hint = *at + length;
        return *at;
      }
    }
  }
  return Error(Errc::kResourceExhausted, fmt::format("no free IOVA range of {:#x} bytes in {}",
                                                     length, internal::describe(x.info.id)));
}

Result<void> IoasidContext::State::install(Ioas& x, std::span<const Piece> pieces,
                                           const Ioas* copy_src) {
  uint64_t limit = options.pinned_limit;
  uint64_t added = 0;
  // Without a limit there is nothing to check, and the walk over the pin tree is a third of a
  // map's cost.
  for (size_t i = 0; limit != UINT64_MAX && i < pieces.size(); ++i) {
    const Piece& p = pieces[i];
    added += pins.new_bytes(
        internal::pin_span_of(MapEntry{0, p.mapping.host, p.mapping.perm, p.pin_domain}));
  }
  if (added > 0 && (pins.pinned_bytes() > limit || added > limit - pins.pinned_bytes())) {
    return Error(Errc::kResourceExhausted,
                 fmt::format("pinning {:#x} more bytes would exceed the pinned memory limit of "
                             "{:#x} bytes ({:#x} pinned)",
                             added, limit, pins.pinned_bytes()));
  }
  std::vector<DmaBackend*> done;
  for (const auto& [b, count] : x.backends) {
    bool both = copy_src && copy_src->backends.count(b);
    for (size_t i = 0; i < pieces.size(); ++i) {
      const Piece& p = pieces[i];
      Result<void> r = Error(Errc::kUnsupported, "");
      if (both) r = b->copy(copy_src->info.id, p.src_iova, x.info.id, p.mapping);
      if (!r.ok() && r.error().code() == Errc::kUnsupported) r = b->map(x.info.id, p.mapping);
      if (r.ok()) continue;
      for (size_t j = 0; j < i; ++j) {
        (void)b->unmap(x.info.id, pieces[j].mapping.iova, pieces[j].mapping.host.length);
      }
      for (DmaBackend* d : done) {
        for (const Piece& q : pieces)
          (void)d->unmap(x.info.id, q.mapping.iova, q.mapping.host.length);
      }
      return std::move(r).error().context("mirroring a mapping of " +
                                          internal::describe(x.info.id));
    }
    done.push_back(b);
  }
  {
    std::unique_lock lock(x.table->mu);
    // Pieces are in IOVA order, so each insertion goes right before the next existing entry.
    auto hint = x.table->entries.lower_bound(pieces.front().mapping.iova.value);
    for (const Piece& p : pieces) {
      hint =
          x.table->entries.emplace_hint(hint, p.mapping.iova.value,
                                        MapEntry{p.mapping.iova.value + (p.mapping.host.length - 1),
                                                 p.mapping.host, p.mapping.perm, p.pin_domain});
      ++hint;
    }
  }
  for (const Piece& p : pieces) {
    pins.pin(internal::pin_span_of(MapEntry{0, p.mapping.host, p.mapping.perm, p.pin_domain}));
    x.mapped_bytes += p.mapping.host.length;
  }
  return {};
}

Result<Iova> IoasidContext::map(IoasId id, std::optional<Iova> iova, const HostRange& host,
                                Perm perm) {
  IOASIS_TRY(check_host(host, perm));
  std::lock_guard lock(s_->mu);
  IOASIS_ASSIGN_OR_RETURN(Ioas * x, s_->find_ioas(id));
  IOASIS_ASSIGN_OR_RETURN(internal::PinSpan span, s_->pin_span(host));
  IOASIS_ASSIGN_OR_RETURN(uint64_t at, s_->place(*x, iova, host.length, host.hva.value));
  const Piece piece{DmaMapping{Iova(at), host, perm}, span.domain, Iova()};
  IOASIS_TRY(s_->install(*x, std::span(&piece, 1), nullptr));
  return Iova(at);
}

Result<uint64_t> IoasidContext::unmap(IoasId id, Iova iova, uint64_t length) {
  bool all = iova.value == 0 && length == UINT64_MAX;
  if (!all && (length == 0 || !range_fits(iova.value, length))) {
    return Error(Errc::kInvalidArgument, "unmap range is empty or wraps past 2^64");
  }
  uint64_t last = all ? UINT64_MAX : iova.value + (length - 1);
  std::lock_guard lock(s_->mu);
  IOASIS_ASSIGN_OR_RETURN(Ioas * x, s_->find_ioas(id));
  auto& entries = x->table->entries;
  auto begin = entries.upper_bound(iova.value);
  if (begin != entries.begin() && std::prev(begin)->second.last >= iova.value) --begin;
  auto end = begin;
  for (; end != entries.end() && end->first <= last; ++end) {
    if (end->first < iova.value || end->second.last > last) {
      return Error(Errc::kInvalidArgument,
                   fmt::format("unmapping {} of {} would split mapping {}; nothing was unmapped",
                               to_string({iova, Iova(last)}), internal::describe(id),
                               to_string({Iova(end->first), Iova(end->second.last)})));
    }
  }
  if (begin == end) {
    if (all) return uint64_t{0};
    return Error(Errc::kNotFound,
                 fmt::format("nothing is mapped in {} of {}", to_string({iova, Iova(last)}),
                             internal::describe(id)));
  }
  for (const auto& [b, count] : x->backends) {
    if (auto r = b->unmap(id, iova, length); !r.ok()) {
      spdlog::error("iommu: backend failed to unmap {} of {}: {}", to_string({iova, Iova(last)}),
                    internal::describe(id), r.error().message());
    }
  }
  uint64_t bytes = 0;
  {
    // Bumping the epoch under the lock retires every IOTLB entry before unmap returns.
    std::unique_lock table_lock(x->table->mu);
    for (auto it = begin; it != end; ++it) {
      s_->pins.unpin(internal::pin_span_of(it->second));
      bytes += it->second.host.length;
    }
    entries.erase(begin, end);
    x->table->epoch.fetch_add(1, std::memory_order_acq_rel);
  }
  x->mapped_bytes -= bytes;
  return bytes;
}

Result<Iova> IoasidContext::copy(IoasId src_id, Iova src_iova, IoasId dst_id,
                                 std::optional<Iova> dst_iova, uint64_t length) {
  if (length == 0 || !range_fits(src_iova.value, length) || src_iova.value % kPageSize) {
    return Error(Errc::kInvalidArgument, "copy source range is empty, unaligned or wraps");
  }
  std::lock_guard lock(s_->mu);
  IOASIS_ASSIGN_OR_RETURN(Ioas * src, s_->find_ioas(src_id));
  IOASIS_ASSIGN_OR_RETURN(Ioas * dst, s_->find_ioas(dst_id));
  std::vector<Piece> pieces;
  uint64_t cursor = src_iova.value;
  uint64_t last = src_iova.value + (length - 1);
  for (;;) {
    auto it = src->table->find(cursor);
    if (it == src->table->entries.end()) {
      return Error(Errc::kNotFound, fmt::format("copy source IOVA {:#x} of {} is not mapped",
                                                cursor, internal::describe(src_id)));
    }
    const MapEntry& e = it->second;
    uint64_t off = cursor - it->first;
    uint64_t piece_last = std::min(e.last, last);
    HostRange host{e.host.hva + off, piece_last - cursor + 1, e.host.fd, e.host.fd_offset + off};
    pieces.push_back(Piece{DmaMapping{Iova(), host, e.perm}, e.pin_domain, Iova(cursor)});
    if (piece_last == last) break;
    cursor = piece_last + 1;
  }
  IOASIS_ASSIGN_OR_RETURN(uint64_t at,
                          s_->place(*dst, dst_iova, length, pieces.front().mapping.host.hva.value));
  for (Piece& p : pieces) p.mapping.iova = Iova(at + (p.src_iova - src_iova));
  IOASIS_TRY(s_->install(*dst, pieces, src));
  return Iova(at);
}

Result<std::vector<IovaRange>> IoasidContext::iova_ranges(IoasId id) const {
  std::lock_guard lock(s_->mu);
  IOASIS_ASSIGN_OR_RETURN(const Ioas* x, s_->find_ioas(id));
  return internal::subtract({kAllIovas}, x->reserved);
}

Result<uint64_t> IoasidContext::iova_alignment(IoasId id) const {
  std::lock_guard lock(s_->mu);
  IOASIS_ASSIGN_OR_RETURN(const Ioas* x, s_->find_ioas(id));
  return s_->alignment(*x);
}

Result<void> IoasidContext::allow_iovas(IoasId id, std::vector<IovaRange> ranges) {
  std::lock_guard lock(s_->mu);
  IOASIS_ASSIGN_OR_RETURN(Ioas * x, s_->find_ioas(id));
  for (const IovaRange& a : ranges) {
    if (a.first > a.last)
      return Error(Errc::kInvalidArgument, "allowed range ends before it starts");
    for (const auto& r : x->reserved) {
      if (a.intersects(r.range)) {
        return Error(Errc::kFailedPrecondition,
                     fmt::format("allowed range {} intersects reserved range {} of {}",
                                 to_string(a), to_string(r.range), internal::describe(id)));
      }
    }
  }
  std::sort(ranges.begin(), ranges.end());
  x->allowed = std::move(ranges);
  return {};
}

Result<void> IoasidContext::reserve_iovas(IoasId id, IovaRange range) {
  std::lock_guard lock(s_->mu);
  IOASIS_ASSIGN_OR_RETURN(Ioas * x, s_->find_ioas(id));
  if (range.first > range.last)
    return Error(Errc::kInvalidArgument, "reserved range ends before it starts");
  auto it = x->table->entries.upper_bound(range.last.value);
  if (it != x->table->entries.begin() && std::prev(it)->second.last >= range.first.value) {
    return Error(Errc::kFailedPrecondition, "cannot reserve " + to_string(range) +
                                                ": it is mapped in " + internal::describe(id));
  }
  for (const IovaRange& a : x->allowed) {
    if (a.intersects(range)) {
      return Error(Errc::kFailedPrecondition, "cannot reserve " + to_string(range) +
                                                  ": it intersects allowed range " + to_string(a));
    }
  }
  x->reserved.push_back({range, std::nullopt});
  return {};
}

}  // namespace ioasis::iommu
