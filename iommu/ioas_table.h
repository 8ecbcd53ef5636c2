// Internal: the translation table of one address space and the slot through which a device
// finds its current table. Shared between IoasidContext (the only writer) and DmaView (readers on
// device threads).
#pragma once

#include <absl/container/btree_map.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>

#include "iommu/types.h"

namespace ioasis::iommu::internal {

struct MapEntry {
  uint64_t last = 0;  // inclusive IOVA
  HostRange host;
  Perm perm = Perm::kNone;
  uint32_t pin_domain = 0;  // which pin key space host pages are counted in
};

// Mappings keyed by first IOVA; entries never overlap. A B-tree rather than a red-black tree: with
// a million mappings, lookups touch a few cache lines instead of twenty. Writers hold `mu`
// exclusively and bump `epoch` before releasing it whenever a translation goes away, which is what
// invalidates every IOTLB entry filled earlier. Readers on the control thread skip the lock: the
// context serializes all writers.
using EntryMap = absl::btree_map<uint64_t, MapEntry>;

struct IoasTable {
  mutable std::shared_mutex mu;
  EntryMap entries;
  std::atomic<uint64_t> epoch{1};

  // The entry containing `iova`, or end().
  EntryMap::const_iterator find(uint64_t iova) const {
    auto it = entries.upper_bound(iova);
    if (it == entries.begin()) return entries.end();
    --it;
    return it->second.last >= iova ? it : entries.end();
  }
};

// Where a device's DMA goes. `generation` changes whenever `table` does (attach, detach,
// replace), so a view notices with one atomic load.
struct DeviceSlot {
  std::atomic<uint64_t> generation{1};
  std::mutex mu;
  std::shared_ptr<IoasTable> table;  // null while detached

  void point_to(std::shared_ptr<IoasTable> t) {
    std::lock_guard lock(mu);
    table = std::move(t);
    generation.fetch_add(1, std::memory_order_acq_rel);
  }
};

}  // namespace ioasis::iommu::internal
