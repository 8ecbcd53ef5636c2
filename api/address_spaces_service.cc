// The AddressSpaces service over the running VM's IoasidContext. Everything runs on the control
// loop, so the guest's own MAP/UNMAP through the virtio-iommu never interleave with ours.
#include <fmt/format.h>

#include "api/convert.h"
#include "api/services.h"

namespace ioasis::api {

namespace {

constexpr uint32_t kDefaultPage = 100;
constexpr uint32_t kMaxPage = 1000;

Result<Vm*> running_vm(Vmm& vmm) {
  if (!vmm.vm() || (vmm.state() != VmState::kRunning && vmm.state() != VmState::kPaused)) {
    return Error(Errc::kFailedPrecondition,
                 fmt::format("address spaces exist while the VM runs (the VM is {})",
                             vm_state_name(vmm.state())));
  }
  return vmm.vm();
}

v1::AddressSpaceKind to_proto(iommu::IoasKind kind) {
  switch (kind) {
    case iommu::IoasKind::kGuestRam:
      return v1::ADDRESS_SPACE_KIND_GUEST_RAM;
    case iommu::IoasKind::kHostManaged:
      return v1::ADDRESS_SPACE_KIND_HOST_MANAGED;
    case iommu::IoasKind::kGuestDomain:
      return v1::ADDRESS_SPACE_KIND_GUEST_DOMAIN;
  }
  return v1::ADDRESS_SPACE_KIND_UNSPECIFIED;
}

// Only host-managed address spaces change through the API: guest-ram is the VM's identity map and
// guest domains belong to the guest's virtio-iommu driver.
Result<iommu::IoasInfo> host_managed(Vm& vm, uint32_t id, const char* op) {
  auto info = vm.ioasids().info(iommu::IoasId{id});
  if (!info) return Error(Errc::kNotFound, fmt::format("id: no address space {}", id));
  if (info->kind == iommu::IoasKind::kGuestDomain) {
    return Error(
        Errc::kFailedPrecondition,
        fmt::format("cannot {} address space {}: it is a guest domain, and the guest owns it "
                    "through the virtio-iommu",
                    op, id));
  }
  if (info->kind == iommu::IoasKind::kGuestRam) {
    return Error(
        Errc::kFailedPrecondition,
        fmt::format("cannot {} address space {}: it is the built-in guest-ram space", op, id));
  }
  return *info;
}

Result<const DeviceRecord*> find_device(Vm& vm, const std::string& id) {
  if (id.empty()) return Error(Errc::kInvalidArgument, "device: required");
  for (const DeviceRecord& d : vm.devices()) {
    if (d.id != id) continue;
    if (!d.dma_device)
      return Error(Errc::kFailedPrecondition, fmt::format("device: '{}' does no DMA", id));
    if (d.iommu) {
      return Error(
          Errc::kFailedPrecondition,
          fmt::format(
              "device: '{}' is behind the virtio-iommu; the guest decides its address space", id));
    }
    return &d;
  }
  return Error(Errc::kNotFound, fmt::format("device: no device '{}'", id));
}

Result<void> fill(Vm& vm, const iommu::IoasInfo& info, v1::AddressSpaceInfo* out) {
  out->set_id(info.id.value);
  out->set_kind(to_proto(info.kind));
  out->set_name(info.name);
  IOASIS_ASSIGN_OR_RETURN(iommu::IoasStats stats, vm.ioasids().stats(info.id));
  out->set_mappings(stats.mappings);
  out->set_mapped_bytes(stats.mapped_bytes);
  out->set_pinned_bytes(stats.pinned_bytes);
  IOASIS_ASSIGN_OR_RETURN(auto attached, vm.ioasids().devices(info.id));
  for (iommu::DeviceId dev : attached) {
    for (const DeviceRecord& d : vm.devices()) {
      if (d.dma_device == dev) out->add_devices(d.id);
    }
  }
  return {};
}

}  // namespace

grpc::Status AddressSpacesService::Create(grpc::ServerContext*,
                                          const v1::CreateAddressSpaceRequest* req,
                                          v1::CreateAddressSpaceResponse* resp) {
  if (req->name().empty()) return invalid("name", "required");
  return to_status(vmm_.call([&]() -> Result<void> {
    IOASIS_ASSIGN_OR_RETURN(Vm * vm, running_vm(vmm_));
    for (const auto& info : vm->ioasids().list()) {
      if (info.kind == iommu::IoasKind::kHostManaged && info.name == req->name()) {
        return Error(Errc::kAlreadyExists, fmt::format("name: address space '{}' exists (id {})",
                                                       req->name(), info.id.value));
      }
    }
    IOASIS_ASSIGN_OR_RETURN(iommu::IoasId id,
                            vm->ioasids().create_ioas(iommu::IoasKind::kHostManaged, req->name()));
    IOASIS_ASSIGN_OR_RETURN(iommu::IoasInfo info, vm->ioasids().info(id));
    return fill(*vm, info, resp->mutable_address_space());
  }));
}

grpc::Status AddressSpacesService::Destroy(grpc::ServerContext*,
                                           const v1::DestroyAddressSpaceRequest* req,
                                           v1::DestroyAddressSpaceResponse*) {
  return to_status(vmm_.call([&]() -> Result<void> {
    IOASIS_ASSIGN_OR_RETURN(Vm * vm, running_vm(vmm_));
    IOASIS_TRY(host_managed(*vm, req->id(), "destroy"));
    return vm->ioasids().destroy_ioas(iommu::IoasId{req->id()});
  }));
}

grpc::Status AddressSpacesService::List(grpc::ServerContext*, const v1::ListAddressSpacesRequest*,
                                        v1::ListAddressSpacesResponse* resp) {
  return to_status(vmm_.call([&]() -> Result<void> {
    IOASIS_ASSIGN_OR_RETURN(Vm * vm, running_vm(vmm_));
    for (const auto& info : vm->ioasids().list())
      IOASIS_TRY(fill(*vm, info, resp->add_address_spaces()));
    resp->set_pinned_bytes(vm->ioasids().stats().pinned_bytes);
    return {};
  }));
}

grpc::Status AddressSpacesService::Attach(grpc::ServerContext*, const v1::AttachRequest* req,
                                          v1::AttachResponse*) {
  return to_status(vmm_.call([&]() -> Result<void> {
    IOASIS_ASSIGN_OR_RETURN(Vm * vm, running_vm(vmm_));
    IOASIS_ASSIGN_OR_RETURN(const DeviceRecord* d, find_device(*vm, req->device()));
    auto info = vm->ioasids().info(iommu::IoasId{req->id()});
    if (!info) return Error(Errc::kNotFound, fmt::format("id: no address space {}", req->id()));
    if (info->kind == iommu::IoasKind::kGuestDomain) {
      return Error(
          Errc::kFailedPrecondition,
          fmt::format("id: address space {} is a guest domain; the guest owns it", req->id()));
    }
    iommu::IoasidContext& ctx = vm->ioasids();
    return ctx.attached_to(*d->dma_device) ? ctx.replace(*d->dma_device, info->id)
                                           : ctx.attach(*d->dma_device, info->id);
  }));
}

grpc::Status AddressSpacesService::Detach(grpc::ServerContext*, const v1::DetachRequest* req,
                                          v1::DetachResponse*) {
  return to_status(vmm_.call([&]() -> Result<void> {
    IOASIS_ASSIGN_OR_RETURN(Vm * vm, running_vm(vmm_));
    IOASIS_ASSIGN_OR_RETURN(const DeviceRecord* d, find_device(*vm, req->device()));
    if (!vm->ioasids().attached_to(*d->dma_device)) {
      return Error(Errc::kFailedPrecondition,
                   fmt::format("device: '{}' is not attached", req->device()));
    }
    return vm->ioasids().detach(*d->dma_device);
  }));
}

grpc::Status AddressSpacesService::Map(grpc::ServerContext*, const v1::MapRequest* req,
                                       v1::MapResponse* resp) {
  if (req->length() == 0) return invalid("length", "must be more than 0");
  if (!req->readable() && !req->writable())
    return invalid("readable", "a mapping needs readable or writable");
  if (!range_fits(req->iova(), req->length()))
    return invalid("iova", "iova + length wraps past 2^64");
  return to_status(vmm_.call([&]() -> Result<void> {
    IOASIS_ASSIGN_OR_RETURN(Vm * vm, running_vm(vmm_));
    IOASIS_TRY(host_managed(*vm, req->id(), "map into"));
    const GuestMemory& mem = vm->memory();
    auto hva = mem.hva(Gpa(req->gpa()), req->length());
    if (!hva) {
      return Error(Errc::kInvalidArgument,
                   fmt::format("gpa: {:#x}+{:#x} is not inside one guest RAM region", req->gpa(),
                               req->length()));
    }
    // Guest RAM is one memfd mapped in one piece, so the fd offset is the distance from its start.
    iommu::HostRange host{*hva, req->length(), mem.fd(), *hva - mem.regions().front().hva};
    auto perm = (req->readable() ? iommu::Perm::kRead : iommu::Perm::kNone) |
                (req->writable() ? iommu::Perm::kWrite : iommu::Perm::kNone);
    std::optional<Iova> iova;
    if (!req->auto_iova()) iova = Iova(req->iova());
    IOASIS_ASSIGN_OR_RETURN(Iova mapped,
                            vm->ioasids().map(iommu::IoasId{req->id()}, iova, host, perm));
    resp->set_iova(mapped.value);
    return {};
  }));
}

grpc::Status AddressSpacesService::Unmap(grpc::ServerContext*, const v1::UnmapRequest* req,
                                         v1::UnmapResponse* resp) {
  if (req->length() == 0) return invalid("length", "must be more than 0");
  return to_status(vmm_.call([&]() -> Result<void> {
    IOASIS_ASSIGN_OR_RETURN(Vm * vm, running_vm(vmm_));
    IOASIS_TRY(host_managed(*vm, req->id(), "unmap from"));
    IOASIS_ASSIGN_OR_RETURN(uint64_t bytes, vm->ioasids().unmap(iommu::IoasId{req->id()},
                                                                Iova(req->iova()), req->length()));
    resp->set_unmapped_bytes(bytes);
    return {};
  }));
}

grpc::Status AddressSpacesService::Mappings(grpc::ServerContext*, const v1::MappingsRequest* req,
                                            v1::MappingsResponse* resp) {
  if (req->page_size() > kMaxPage)
    return invalid("page_size", fmt::format("{} is more than {}", req->page_size(), kMaxPage));
  uint32_t page = req->page_size() ? req->page_size() : kDefaultPage;
  return to_status(vmm_.call([&]() -> Result<void> {
    IOASIS_ASSIGN_OR_RETURN(Vm * vm, running_vm(vmm_));
    // Guest domains may be read, just not changed.
    if (!vm->ioasids().info(iommu::IoasId{req->id()})) {
      return Error(Errc::kNotFound, fmt::format("id: no address space {}", req->id()));
    }
    IOASIS_ASSIGN_OR_RETURN(
        auto mappings,
        vm->ioasids().mappings(iommu::IoasId{req->id()}, Iova(req->start_iova()), page + 1));
    for (size_t i = 0; i < mappings.size() && i < page; ++i) {
      const iommu::DmaMapping& m = mappings[i];
      auto* out = resp->add_mappings();
      out->set_iova(m.iova.value);
      out->set_length(m.host.length);
      out->set_gpa(vm->memory().gpa_of(m.host.hva).value_or(Gpa(0)).value);
      out->set_readable(has_perm(m.perm, iommu::Perm::kRead));
      out->set_writable(has_perm(m.perm, iommu::Perm::kWrite));
    }
    if (mappings.size() > page) {
      resp->set_has_next(true);
      resp->set_next_iova(mappings[page].iova.value);
    }
    return {};
  }));
}

}  // namespace ioasis::api
