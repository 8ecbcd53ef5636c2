// The test guest driving DMA engines passed through as kernel VFIO devices, in a real KVM VM. The
// kernel is the FAKE of iommu/testing/fake_kernel.h (this host has no /dev/vfio): the VM opens
// the devices, binds them to iommufd or puts their groups in type1 containers, and mirrors the
// guest's virtio-iommu domains into kernel IOASes or containers exactly as it would on a host
// with VFIO; the engines' DMA goes through the mappings the fake kernel was given.
#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "devices/vfio/kernel_vfio_test_util.h"
#include "iommu/testing/fake_kernel.h"
#include "vmm/vm.h"

namespace ioasis {
namespace {

using devices::testing::EngineModel;
using devices::testing::FakeSysfs;
using iommu::testing::FakeKernel;

std::string cdev(int n) { return "/dev/vfio/devices/vfio" + std::to_string(n); }

struct GuestRun {
  VmExit exit;
  std::string console;
};

// Parameter: true passes the engines as cdevs (iommufd), false as sysfs devices (group + type1).
class VmKernelVfio : public ::testing::TestWithParam<bool> {
 protected:
  // Engines in IOMMU groups 7, 8, ...; behind the virtio-iommu or in guest-ram.
  void add_engines(int count = 2, bool iommu = true, bool intx = false) {
    for (int n = 0; n < count; ++n) {
      std::string pci = "0000:01:0" + std::to_string(n) + ".0";
      int group = 7 + n;
      engines_.push_back(std::make_shared<EngineModel>(fake_, cdev(n), true, intx));
      fake_.add_vfio_device(cdev(n), group, pci, engines_.back());
      sysfs_.add(n, pci, group);
      KernelDeviceConfig d;
      d.path = GetParam() ? cdev(n) : sysfs_.pci_path(pci);
      d.iommu = iommu;
      config_.kernel_devices.push_back(d);
    }
  }

  Result<GuestRun> run(const std::string& cmdline) {
    std::string console = (std::filesystem::temp_directory_path() /
                           ("ioasis-kvfio-" + std::to_string(::getpid()) + ".log"))
                              .string();
    config_.kernel = IOASIS_TESTGUEST;
    config_.cmdline = cmdline;
    config_.memory_size = 256ull << 20;
    config_.serial = {SerialConfig::Mode::kFile, console};
    boost::asio::io_context io;
    std::optional<VmExit> exit;
    auto on_exit = [&](const VmExit& e) {
      boost::asio::post(io, [&, e] {
        exit = e;
        io.stop();
      });
    };
    IOASIS_ASSIGN_OR_RETURN(
        std::unique_ptr<Vm> vm,
        Vm::create(config_, io, on_exit, {&fake_, {sysfs_.root(), "/dev/iommu"}}));
    vm->start();
    auto work = boost::asio::make_work_guard(io);  // a VM may have nothing for the loop to watch
    io.run_for(std::chrono::seconds(60));
    vm->stop();
    std::ifstream in(console);
    std::stringstream text;
    text << in.rdbuf();
    std::filesystem::remove(console);
    if (!exit) return Error(Errc::kUnavailable, "the guest did not finish:\n" + text.str());
    return GuestRun{*exit, text.str()};
  }

  // Runs the guest with `cmdline` and expects it to pass every check.
  void expect_pass(const std::string& cmdline) {
    auto r = run(cmdline);
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ(r->exit.exit_status(), 0) << r->console;
    EXPECT_NE(r->console.find("TESTGUEST PASS"), std::string::npos) << r->console;
  }

  FakeKernel fake_;
  FakeSysfs sysfs_;
  std::vector<std::shared_ptr<EngineModel>> engines_;
  VmConfig config_;
};

TEST_P(VmKernelVfio, TwoEnginesInOneGuestDomainShareItsMappings) {
  add_engines();
  expect_pass("test=dma-shared");
}

TEST_P(VmKernelVfio, EnginesInSeparateGuestDomainsAreIsolated) {
  add_engines();
  expect_pass("test=dma-isolated");
}

TEST_P(VmKernelVfio, MsixCompletionsReachTheGuestAndThePbaHoldsMaskedOnes) {
  add_engines(1, false);
  expect_pass("test=msix pba=1");
}

TEST_P(VmKernelVfio, AnMmappableBarIsReachedWithoutTraps) {
  add_engines(1, false);
  expect_pass("test=bar-mmap direct=1");
}

// KVM's resample eventfd goes to the (fake) kernel as the INTx unmask eventfd: each EOI unmasks
// the device without the VMM, and a completion held back by a masked IOAPIC entry still arrives.
TEST_P(VmKernelVfio, IntxIsUnmaskedByEachEoiThroughTheKernel) {
  add_engines(1, false, true);
  expect_pass("test=intx masked=1");
}

INSTANTIATE_TEST_SUITE_P(CdevAndGroup, VmKernelVfio, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "Iommufd" : "Type1"; });

}  // namespace
}  // namespace ioasis
