// An InterruptManager whose MSI routes count their triggers.
#pragma once

#include <memory>
#include <vector>

#include "devices/interrupt.h"

namespace ioasis::devices::virtio::testing {

class FakeInterrupts : public InterruptManager {
 public:
  struct Route : MsiRoute {
    Result<void> update(const MsiMessage& msg, bool is_masked) override {
      message = msg;
      masked = is_masked;
      return {};
    }
    void trigger() override { ++triggers; }
    int eventfd() const override { return -1; }
    MsiMessage message;
    bool masked = true;
    int triggers = 0;
  };

  std::shared_ptr<IrqLine> legacy_line(uint32_t) override { return nullptr; }
  Result<std::unique_ptr<MsiRoute>> create_msi_route() override {
    auto route = std::make_unique<Route>();
    routes.push_back(route.get());
    return std::unique_ptr<MsiRoute>(std::move(route));
  }
  std::vector<Route*> routes;  // in creation order: vector i of the first MSI-X table
};

}  // namespace ioasis::devices::virtio::testing
