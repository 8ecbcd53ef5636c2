#include <fmt/format.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "api/convert.h"
#include "api/services.h"

namespace ioasis::api {

namespace {

template <typename F>
grpc::Status on_loop(Vmm& vmm, F fn) {
  return to_status(vmm.call(std::move(fn)));
}

}  // namespace

grpc::Status VmService::Create(grpc::ServerContext*, const v1::CreateRequest* req,
                               v1::CreateResponse*) {
  if (!req->has_config()) return invalid("config", "required");
  auto config = from_proto(req->config());
  if (!config) return to_status(config.error());
  return on_loop(vmm_, [&]() { return vmm_.create(*config); });
}

grpc::Status VmService::Boot(grpc::ServerContext*, const v1::BootRequest*, v1::BootResponse*) {
  return on_loop(vmm_, [&]() { return vmm_.boot(); });
}

grpc::Status VmService::Pause(grpc::ServerContext*, const v1::PauseRequest*, v1::PauseResponse*) {
  return on_loop(vmm_, [&]() { return vmm_.pause(); });
}

grpc::Status VmService::Resume(grpc::ServerContext*, const v1::ResumeRequest*,
                               v1::ResumeResponse*) {
  return on_loop(vmm_, [&]() { return vmm_.resume(); });
}

grpc::Status VmService::Shutdown(grpc::ServerContext*, const v1::ShutdownRequest* req,
                                 v1::ShutdownResponse*) {
  constexpr uint32_t kMaxGraceMs = 10 * 60 * 1000;
  if (req->grace_period_ms() > kMaxGraceMs) {
    return invalid("grace_period_ms",
                   fmt::format("{} is more than {}", req->grace_period_ms(), kMaxGraceMs));
  }
  // Graceful first: press the power button and give the guest the grace period to power off by
  // itself; whatever still runs after it is stopped. The wait happens here, on the API thread,
  // so the control loop keeps serving the guest meanwhile.
  if (req->grace_period_ms() > 0) {
    auto pressed = vmm_.call([&]() { return vmm_.press_power_button(); });
    if (pressed.ok()) {
      auto deadline =
          std::chrono::steady_clock::now() + std::chrono::milliseconds(req->grace_period_ms());
      while (std::chrono::steady_clock::now() < deadline) {
        if (vmm_.call([&]() { return vmm_.state(); }) == VmState::kShutdown) {
          return grpc::Status::OK;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
  }
  return on_loop(vmm_, [&]() { return vmm_.shutdown(); });
}

grpc::Status VmService::Reboot(grpc::ServerContext*, const v1::RebootRequest*,
                               v1::RebootResponse*) {
  return on_loop(vmm_, [&]() { return vmm_.reboot(); });
}

grpc::Status VmService::Delete(grpc::ServerContext*, const v1::DeleteRequest*,
                               v1::DeleteResponse*) {
  return on_loop(vmm_, [&]() { return vmm_.remove(); });
}

grpc::Status VmService::Info(grpc::ServerContext*, const v1::InfoRequest*, v1::InfoResponse* resp) {
  vmm_.call([&]() {
    resp->set_state(to_proto(vmm_.state()));
    if (const auto& config = vmm_.config()) {
      *resp->mutable_config() = to_proto(*config);
      resp->set_vcpus(config->cpus);
      resp->set_memory_bytes(config->memory_size);
    }
    list_devices(vmm_, resp->mutable_devices());
    if (const auto& exit = vmm_.last_exit()) *resp->mutable_exit() = to_proto(*exit);
    return 0;
  });
  return grpc::Status::OK;
}

grpc::Status VmService::Ping(grpc::ServerContext*, const v1::PingRequest*, v1::PingResponse* resp) {
  resp->set_version(IOASIS_VERSION);
  resp->set_pid(static_cast<uint32_t>(::getpid()));
  return grpc::Status::OK;
}

grpc::Status VmService::Events(grpc::ServerContext* context, const v1::EventsRequest*,
                               grpc::ServerWriter<v1::Event>* writer) {
  // Events are queued by the control loop and written here, so a slow client never blocks the
  // loop. A client that falls more than kMaxBacklog events behind loses the oldest.
  constexpr size_t kMaxBacklog = 1024;
  struct Queue {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<v1::Event> events;
  };
  auto queue = std::make_shared<Queue>();
  uint64_t id = vmm_.subscribe([queue](const VmEvent& event) {
    std::lock_guard lock(queue->mu);
    if (queue->events.size() >= kMaxBacklog) queue->events.pop_front();
    queue->events.push_back(to_proto(event));
    queue->cv.notify_one();
  });
  while (!context->IsCancelled()) {
    std::unique_lock lock(queue->mu);
    queue->cv.wait_for(lock, std::chrono::milliseconds(100),
                       [&] { return !queue->events.empty(); });
    if (queue->events.empty()) continue;
    v1::Event event = std::move(queue->events.front());
    queue->events.pop_front();
    lock.unlock();
    if (!writer->Write(event)) break;
  }
  vmm_.unsubscribe(id);
  return grpc::Status::OK;
}

}  // namespace ioasis::api
