// A DmaBackend for tests: records what the context asks of it and can be told to refuse.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "iommu/dma_backend.h"

namespace ioasis::iommu::testing {

class RecordingBackend : public DmaBackend {
 public:
  explicit RecordingBackend(Aperture aperture = {}) : aperture_(aperture) {}

  Aperture aperture(DeviceId) const override { return aperture_; }

  Result<void> attach(DeviceId dev, IoasId ioas) override {
    calls.push_back("attach " + std::to_string(dev.value) + " " + std::to_string(ioas.value));
    if (fail_attach) return Error(Errc::kIo, "attach refused");
    auto old = where.find(dev.value);
    if (old != where.end()) drop_if_unused(dev, old->second);
    where[dev.value] = ioas.value;
    return {};
  }
  Result<void> detach(DeviceId dev, IoasId ioas) override {
    calls.push_back("detach " + std::to_string(dev.value) + " " + std::to_string(ioas.value));
    drop_if_unused(dev, ioas.value);
    where.erase(dev.value);
    return {};
  }
  Result<void> map(IoasId ioas, const DmaMapping& m) override {
    if (fail_map) return Error(Errc::kIo, "map refused");
    mirrors[ioas.value][m.iova.value] = m.host.length;
    maps++;
    return {};
  }
  Result<void> unmap(IoasId ioas, Iova iova, uint64_t length) override {
    auto& mirror = mirrors[ioas.value];
    uint64_t last =
        (iova.value == 0 && length == UINT64_MAX) ? UINT64_MAX : iova.value + length - 1;
    for (auto it = mirror.lower_bound(iova.value); it != mirror.end() && it->first <= last;) {
      it = mirror.erase(it);
    }
    return {};
  }
  Result<void> copy(IoasId, Iova, IoasId dst, const DmaMapping& m) override {
    if (!copy_supported) return Error(Errc::kUnsupported, "no copy");
    mirrors[dst.value][m.iova.value] = m.host.length;
    copies++;
    return {};
  }

  Aperture aperture_;
  bool fail_attach = false;
  bool fail_map = false;
  bool copy_supported = false;
  int maps = 0;
  int copies = 0;
  std::vector<std::string> calls;
  std::map<uint32_t, uint32_t> where;                        // device -> ioas
  std::map<uint32_t, std::map<uint64_t, uint64_t>> mirrors;  // ioas -> iova -> length

 private:
  void drop_if_unused(DeviceId dev, uint32_t ioas) {
    for (const auto& [d, x] : where) {
      if (d != dev.value && x == ioas) return;
    }
    mirrors.erase(ioas);
  }
};

}  // namespace ioasis::iommu::testing
