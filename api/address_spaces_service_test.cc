// AddressSpaces through a real gRPC channel, with a vfio-user DMA engine (our server, in this
// process, on a real socket) as the device: what the API maps is what the device can reach.
#include <atomic>
#include <thread>

#include "api/api_test_util.h"
#include "devices/vfio/server/vfio_user_server.h"

namespace ioasis::api {
namespace {

using namespace std::chrono_literals;
namespace dma = devices::vfio_user::dma_engine;
using devices::vfio_user::DmaError;
using devices::vfio_user::DmaState;

class AddressSpacesApi : public ApiFixture {
 protected:
  void SetUp() override {
    ApiFixture::SetUp();
    devices::vfio_user::ServerOptions options;
    options.socket_path = (dir_ / "dma.sock").string();
    auto server = devices::vfio_user::VfioUserServer::create(options);
    ASSERT_TRUE(server.ok()) << server.error().message();
    server_dev_ = std::move(*server);
    server_dev_->start();
  }
  void TearDown() override {
    ApiFixture::TearDown();
    server_dev_.reset();
  }

  // Boots the heartbeat guest with the DMA engine as "dma0", not behind the vIOMMU.
  void boot_with_dma_engine(bool with_disk = false) {
    v1::CreateRequest create;
    *create.mutable_config() = guest("test=heartbeat period_ms=200");
    auto* dev = create.mutable_config()->add_user_devices();
    dev->set_socket(server_dev_->socket_path());
    dev->set_id("dma0");
    if (with_disk) {
      std::ofstream(dir_ / "disk.img") << std::string(1 << 20, '\0');
      auto* disk = create.mutable_config()->add_disks();
      disk->set_path((dir_ / "disk.img").string());
      disk->set_id("disk0");
    }
    ASSERT_TRUE(call(vm_.get(), &v1::Vm::Stub::Create, create).ok());
    auto boot = call(vm_.get(), &v1::Vm::Stub::Boot, v1::BootRequest());
    ASSERT_TRUE(boot.ok()) << boot.error_message();
  }

  // Has the device copy `length` bytes from IOVA `src` to `dst`; returns its final status.
  std::pair<DmaState, DmaError> device_copy(uint64_t src, uint64_t dst, uint32_t length) {
    auto& engine = server_dev_->device();
    auto put = [&](uint64_t reg, auto value) {
      engine.bar0_write(reg, std::span(reinterpret_cast<const uint8_t*>(&value), sizeof(value)));
    };
    put(dma::kRegSrc, src);
    put(dma::kRegDst, dst);
    put(dma::kRegLength, length);
    put(dma::kRegDoorbell, uint32_t{1});
    uint32_t status = 0;
    for (int i = 0; i < 500; ++i) {
      engine.bar0_read(dma::kRegStatus, std::span(reinterpret_cast<uint8_t*>(&status), 4));
      if ((status & 0xff) != static_cast<uint32_t>(DmaState::kBusy)) break;
      std::this_thread::sleep_for(2ms);
    }
    return {static_cast<DmaState>(status & 0xff), static_cast<DmaError>((status >> 8) & 0xff)};
  }

  v1::ListAddressSpacesResponse list() {
    v1::ListAddressSpacesResponse r;
    EXPECT_TRUE(call(spaces_.get(), &v1::AddressSpaces::Stub::List, v1::ListAddressSpacesRequest(), &r).ok());
    return r;
  }

  std::unique_ptr<devices::vfio_user::VfioUserServer> server_dev_;
};

TEST_F(AddressSpacesApi, CreateAttachMapSeenByTheDeviceUnmapDetachDestroy) {
  boot_with_dma_engine();
  // At boot the device shares guest-ram (IOVA = GPA): it can copy between two RAM pages.
  auto guest_ram = list();
  ASSERT_GE(guest_ram.address_spaces_size(), 1);
  EXPECT_EQ(guest_ram.address_spaces(0).kind(), v1::ADDRESS_SPACE_KIND_GUEST_RAM);
  EXPECT_EQ(device_copy(0x200000, 0x201000, 4096).first, DmaState::kDone);

  v1::CreateAddressSpaceRequest create;
  create.set_name("isolated");
  v1::CreateAddressSpaceResponse created;
  ASSERT_TRUE(call(spaces_.get(), &v1::AddressSpaces::Stub::Create, create, &created).ok());
  uint32_t id = created.address_space().id();
  EXPECT_EQ(created.address_space().kind(), v1::ADDRESS_SPACE_KIND_HOST_MANAGED);

  v1::AttachRequest attach;
  attach.set_device("dma0");
  attach.set_id(id);
  ASSERT_TRUE(call(spaces_.get(), &v1::AddressSpaces::Stub::Attach, attach).ok());
  // Moved out of guest-ram, into an empty space: the device reaches nothing.
  EXPECT_EQ(device_copy(0x200000, 0x201000, 4096).second, DmaError::kSrcUnmapped);

  v1::MapRequest map;
  map.set_id(id);
  map.set_iova(0x10000000);
  map.set_gpa(0x200000);
  map.set_length(0x2000);
  map.set_readable(true);
  map.set_writable(true);
  v1::MapResponse mapped;
  ASSERT_TRUE(call(spaces_.get(), &v1::AddressSpaces::Stub::Map, map, &mapped).ok());
  EXPECT_EQ(mapped.iova(), 0x10000000u);
  EXPECT_EQ(device_copy(0x10000000, 0x10001000, 4096).first, DmaState::kDone);
  // Outside the mapping the device still faults.
  EXPECT_EQ(device_copy(0x10000000, 0x10002000, 4096).second, DmaError::kDstUnmapped);

  auto spaces = list();
  bool found = false;
  for (const auto& a : spaces.address_spaces()) {
    if (a.id() != id) continue;
    found = true;
    EXPECT_EQ(a.mappings(), 1u);
    EXPECT_EQ(a.mapped_bytes(), 0x2000u);
    ASSERT_EQ(a.devices_size(), 1);
    EXPECT_EQ(a.devices(0), "dma0");
  }
  EXPECT_TRUE(found);
  // The same guest pages are mapped in guest-ram too, and pinned once.
  EXPECT_EQ(spaces.pinned_bytes(), guest_ram.pinned_bytes());

  v1::MappingsRequest page;
  page.set_id(id);
  v1::MappingsResponse mappings;
  ASSERT_TRUE(call(spaces_.get(), &v1::AddressSpaces::Stub::Mappings, page, &mappings).ok());
  ASSERT_EQ(mappings.mappings_size(), 1);
  EXPECT_EQ(mappings.mappings(0).gpa(), 0x200000u);
  EXPECT_EQ(mappings.mappings(0).length(), 0x2000u);
  EXPECT_FALSE(mappings.has_next());

  v1::UnmapRequest unmap;
  unmap.set_id(id);
  unmap.set_iova(0x10000000);
  unmap.set_length(0x2000);
  v1::UnmapResponse unmapped;
  ASSERT_TRUE(call(spaces_.get(), &v1::AddressSpaces::Stub::Unmap, unmap, &unmapped).ok());
  EXPECT_EQ(unmapped.unmapped_bytes(), 0x2000u);
  EXPECT_EQ(device_copy(0x10000000, 0x10001000, 4096).second, DmaError::kSrcUnmapped);

  v1::DestroyAddressSpaceRequest destroy;
  destroy.set_id(id);
  EXPECT_EQ(call(spaces_.get(), &v1::AddressSpaces::Stub::Destroy, destroy).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);  // dma0 is still attached
  v1::DetachRequest detach;
  detach.set_device("dma0");
  ASSERT_TRUE(call(spaces_.get(), &v1::AddressSpaces::Stub::Detach, detach).ok());
  ASSERT_TRUE(call(spaces_.get(), &v1::AddressSpaces::Stub::Destroy, destroy).ok());
}

TEST_F(AddressSpacesApi, BadInputGetsTheDocumentedStatusAndTheVmmKeepsServing) {
  boot_with_dma_engine(/*with_disk=*/true);
  auto status = [](const grpc::Status& s) { return s.error_code(); };
  v1::CreateAddressSpaceRequest create;
  EXPECT_EQ(status(call(spaces_.get(), &v1::AddressSpaces::Stub::Create, create)), grpc::StatusCode::INVALID_ARGUMENT);
  create.set_name("a");
  v1::CreateAddressSpaceResponse created;
  ASSERT_TRUE(call(spaces_.get(), &v1::AddressSpaces::Stub::Create, create, &created).ok());
  EXPECT_EQ(status(call(spaces_.get(), &v1::AddressSpaces::Stub::Create, create)), grpc::StatusCode::ALREADY_EXISTS);
  uint32_t id = created.address_space().id();

  v1::MapRequest map;
  map.set_id(id);
  map.set_gpa(0x200000);
  map.set_length(0x1000);
  map.set_readable(true);
  EXPECT_EQ(status(call(spaces_.get(), &v1::AddressSpaces::Stub::Map, map)), grpc::StatusCode::OK);
  // Overlap, unaligned, outside RAM, no permission, zero length, unknown space, wrapping.
  EXPECT_EQ(status(call(spaces_.get(), &v1::AddressSpaces::Stub::Map, map)), grpc::StatusCode::ALREADY_EXISTS);
  map.set_iova(0x10000001);
  EXPECT_EQ(status(call(spaces_.get(), &v1::AddressSpaces::Stub::Map, map)), grpc::StatusCode::INVALID_ARGUMENT);
  map.set_iova(0x20000000);
  map.set_gpa(1ull << 40);
  grpc::Status outside = call(spaces_.get(), &v1::AddressSpaces::Stub::Map, map);
  EXPECT_EQ(status(outside), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(outside.error_message().find("gpa"), std::string::npos) << outside.error_message();
  map.set_gpa(0x200000);
  map.set_readable(false);
  EXPECT_EQ(status(call(spaces_.get(), &v1::AddressSpaces::Stub::Map, map)), grpc::StatusCode::INVALID_ARGUMENT);
  map.set_readable(true);
  map.set_length(0);
  EXPECT_EQ(status(call(spaces_.get(), &v1::AddressSpaces::Stub::Map, map)), grpc::StatusCode::INVALID_ARGUMENT);
  map.set_length(0x1000);
  map.set_iova(UINT64_MAX - 0xfff + 1);
  map.set_length(0x2000);
  EXPECT_EQ(status(call(spaces_.get(), &v1::AddressSpaces::Stub::Map, map)), grpc::StatusCode::INVALID_ARGUMENT);
  map.set_iova(0x20000000);
  map.set_length(0x1000);
  map.set_id(9999);
  EXPECT_EQ(status(call(spaces_.get(), &v1::AddressSpaces::Stub::Map, map)), grpc::StatusCode::NOT_FOUND);

  // Unmap that would split a mapping removes nothing.
  v1::MapRequest big;
  big.set_id(id);
  big.set_iova(0x40000000);
  big.set_gpa(0x400000);
  big.set_length(0x4000);
  big.set_writable(true);
  ASSERT_TRUE(call(spaces_.get(), &v1::AddressSpaces::Stub::Map, big).ok());
  v1::UnmapRequest split;
  split.set_id(id);
  split.set_iova(0x40001000);
  split.set_length(0x1000);
  EXPECT_EQ(status(call(spaces_.get(), &v1::AddressSpaces::Stub::Unmap, split)), grpc::StatusCode::INVALID_ARGUMENT);

  // guest-ram is built in; unknown devices; devices without DMA.
  v1::DestroyAddressSpaceRequest destroy_ram;
  destroy_ram.set_id(list().address_spaces(0).id());
  EXPECT_EQ(status(call(spaces_.get(), &v1::AddressSpaces::Stub::Destroy, destroy_ram)),
            grpc::StatusCode::FAILED_PRECONDITION);
  v1::AttachRequest attach;
  attach.set_device("nope");
  attach.set_id(id);
  EXPECT_EQ(status(call(spaces_.get(), &v1::AddressSpaces::Stub::Attach, attach)), grpc::StatusCode::NOT_FOUND);
  attach.set_device("serial0");
  EXPECT_EQ(status(call(spaces_.get(), &v1::AddressSpaces::Stub::Attach, attach)), grpc::StatusCode::FAILED_PRECONDITION);
  v1::MappingsRequest page;
  page.set_id(id);
  page.set_page_size(5000);
  EXPECT_EQ(status(call(spaces_.get(), &v1::AddressSpaces::Stub::Mappings, page)), grpc::StatusCode::INVALID_ARGUMENT);

  // Devices cannot be added after boot.
  v1::AddDiskRequest disk;
  disk.mutable_disk()->set_path("/tmp/x");
  EXPECT_EQ(status(call(devices_.get(), &v1::Devices::Stub::AddDisk, disk)), grpc::StatusCode::FAILED_PRECONDITION);

  // After all of that the VMM still answers and the guest still runs.
  EXPECT_TRUE(call(vm_.get(), &v1::Vm::Stub::Ping, v1::PingRequest()).ok());
  EXPECT_EQ(info().state(), v1::VM_STATE_RUNNING);
}

TEST_F(AddressSpacesApi, NeedARunningVm) {
  EXPECT_EQ(call(spaces_.get(), &v1::AddressSpaces::Stub::List, v1::ListAddressSpacesRequest()).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

using DevicesApi = ApiFixture;

TEST_F(DevicesApi, ColdPlugBeforeBootListsAndRemoves) {
  v1::CreateRequest create;
  *create.mutable_config() = guest("test=heartbeat");
  ASSERT_TRUE(call(vm_.get(), &v1::Vm::Stub::Create, create).ok());
  std::ofstream(dir_ / "disk.img") << std::string(1 << 20, '\0');
  v1::AddDiskRequest add;
  add.mutable_disk()->set_path((dir_ / "disk.img").string());
  v1::AddDeviceResponse added;
  ASSERT_TRUE(call(devices_.get(), &v1::Devices::Stub::AddDisk, add, &added).ok());
  EXPECT_EQ(added.id(), "disk0");
  add.mutable_disk()->set_id("disk0");
  EXPECT_EQ(call(devices_.get(), &v1::Devices::Stub::AddDisk, add).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  add.mutable_disk()->set_id(std::string(21, 'x'));
  EXPECT_EQ(call(devices_.get(), &v1::Devices::Stub::AddDisk, add).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  add.mutable_disk()->clear_path();
  EXPECT_EQ(call(devices_.get(), &v1::Devices::Stub::AddDisk, add).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  v1::ListDevicesResponse listed;
  ASSERT_TRUE(call(devices_.get(), &v1::Devices::Stub::List, v1::ListDevicesRequest(), &listed).ok());
  ASSERT_EQ(listed.devices_size(), 1);
  EXPECT_EQ(listed.devices(0).kind(), "virtio-blk");

  ASSERT_TRUE(call(vm_.get(), &v1::Vm::Stub::Boot, v1::BootRequest()).ok());
  ASSERT_TRUE(call(devices_.get(), &v1::Devices::Stub::List, v1::ListDevicesRequest(), &listed).ok());
  bool disk_on_pci = false;
  for (const auto& d : listed.devices()) disk_on_pci |= d.id() == "disk0" && !d.bdf().empty() && d.ioas() != 0;
  EXPECT_TRUE(disk_on_pci) << listed.DebugString();
  v1::RemoveDeviceRequest remove;
  remove.set_id("disk0");
  EXPECT_EQ(call(devices_.get(), &v1::Devices::Stub::Remove, remove).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

}  // namespace
}  // namespace ioasis::api

namespace ioasis::api {
namespace {

using namespace std::chrono_literals;

// Several clients read the VM while the guest maps and unmaps through the virtio-iommu as fast as
// it can (test=viommu-bench): every read is answered, guest-domain spaces appear in listings, and
// the guest's own MAP/UNMAP all succeed.
TEST_F(ApiFixture, ConcurrentReadersWhileTheGuestMapsThroughTheViommu) {
  v1::CreateRequest create;
  *create.mutable_config() = guest("test=viommu-bench ms=1500");
  create.mutable_config()->set_iommu(true);
  for (const char* name : {"a.img", "b.img"}) {
    std::ofstream(dir_ / name) << std::string(256 * 512, '\0');
    auto* disk = create.mutable_config()->add_disks();
    disk->set_path((dir_ / name).string());
    disk->set_iommu(true);
  }
  ASSERT_TRUE(call(vm_.get(), &v1::Vm::Stub::Create, create).ok());
  ASSERT_TRUE(call(vm_.get(), &v1::Vm::Stub::Boot, v1::BootRequest()).ok());

  std::atomic<bool> stop{false};
  std::atomic<int> calls{0}, errors{0}, domains_seen{0};
  std::vector<std::thread> readers;
  for (int c = 0; c < 3; ++c) {
    readers.emplace_back([&] {
      auto channel = connect_unix(socket_);
      auto vm = v1::Vm::NewStub(channel);
      auto spaces = v1::AddressSpaces::NewStub(channel);
      while (!stop) {
        v1::InfoResponse info;
        grpc::Status st = call(vm.get(), &v1::Vm::Stub::Info, v1::InfoRequest(), &info);
        if (!st.ok()) errors++;
        if (info.state() != v1::VM_STATE_RUNNING) break;
        v1::ListAddressSpacesResponse list;
        st = call(spaces.get(), &v1::AddressSpaces::Stub::List, v1::ListAddressSpacesRequest(), &list);
        // The VM may stop between the two calls; anything else is an error.
        if (!st.ok() && st.error_code() != grpc::StatusCode::FAILED_PRECONDITION) errors++;
        for (const auto& a : list.address_spaces()) {
          if (a.kind() == v1::ADDRESS_SPACE_KIND_GUEST_DOMAIN) domains_seen++;
        }
        calls += 2;
      }
    });
  }
  v1::InfoResponse r;
  for (int i = 0; i < 1500 && (r = info()).state() == v1::VM_STATE_RUNNING; ++i) std::this_thread::sleep_for(20ms);
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(r.state(), v1::VM_STATE_SHUTDOWN);
  EXPECT_EQ(r.exit().kind(), "debug-exit");
  EXPECT_EQ(r.exit().code(), 0) << console();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_GT(calls.load(), 10);
  EXPECT_GT(domains_seen.load(), 0) << "the guest's domain never showed in a listing";
  EXPECT_NE(console().find("viommu-bench:"), std::string::npos);
}

}  // namespace
}  // namespace ioasis::api
