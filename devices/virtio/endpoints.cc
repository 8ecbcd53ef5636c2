#include "devices/virtio/endpoints.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace ioasis::devices::virtio {

Result<void> IommuEndpoints::add(uint32_t endpoint, iommu::DeviceId device) {
  std::lock_guard lock(mu_);
  if (!devices_.emplace(endpoint, device).second) {
    return Error(Errc::kAlreadyExists,
                 fmt::format("endpoint {:#x} is already registered", endpoint));
  }
  return {};
}

std::optional<iommu::DeviceId> IommuEndpoints::find(uint32_t endpoint) const {
  std::lock_guard lock(mu_);
  auto it = devices_.find(endpoint);
  if (it == devices_.end()) return std::nullopt;
  return it->second;
}

std::vector<uint32_t> IommuEndpoints::endpoints() const {
  std::lock_guard lock(mu_);
  std::vector<uint32_t> out;
  for (const auto& [endpoint, device] : devices_) out.push_back(endpoint);
  return out;
}

bool IommuEndpoints::empty() const {
  std::lock_guard lock(mu_);
  return devices_.empty();
}

void IommuEndpoints::set_fault_handler(FaultHandler handler) {
  std::lock_guard lock(mu_);
  handler_ = std::move(handler);
}

void IommuEndpoints::report_fault(uint32_t endpoint, const iommu::DmaFault& fault) {
  FaultHandler handler;
  {
    std::lock_guard lock(mu_);
    handler = handler_;
  }
  if (handler) {
    handler(endpoint, fault);
  } else {
    spdlog::warn("DMA fault of endpoint {:#x} with no virtio-iommu to report it: {}", endpoint,
                 fault.to_string());
  }
}

}  // namespace ioasis::devices::virtio
