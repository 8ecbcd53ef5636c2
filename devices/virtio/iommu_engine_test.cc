// Domains, endpoints, bypass, PROBE, configuration, reset and fault events.
#include "devices/virtio/iommu_engine.h"

#include <gtest/gtest.h>

#include "devices/virtio/iommu_test_fixture.h"

namespace ioasis::devices::virtio_iommu {
namespace {

TEST_F(ViommuEngineTest, AttachCreatesADomainBackedByAGuestDomainAddressSpace) {
  EXPECT_EQ(attach(1, kEp1), kSOk);
  auto ioas = engine_->domain_ioas(1);
  ASSERT_TRUE(ioas.has_value());
  EXPECT_EQ(ctx_->info(*ioas)->kind, iommu::IoasKind::kGuestDomain);
  EXPECT_EQ(ctx_->attached_to(dev1_), ioas);
}

TEST_F(ViommuEngineTest, AttachOfAnUnknownEndpointIsNoent) {
  EXPECT_EQ(attach(1, 0x99), kSNoEnt);
  EXPECT_EQ(engine_->domain_count(), 0u);
}

TEST_F(ViommuEngineTest, AttachWithNonZeroReservedIsInval) {
  AttachBody b{};
  b.head.type = kTAttach;
  b.domain = 1;
  b.endpoint = kEp1;
  b.reserved[2] = 1;
  EXPECT_EQ(send(b), kSInval);
  EXPECT_FALSE(ctx_->attached_to(dev1_).has_value());
}

TEST_F(ViommuEngineTest, AttachWithAnUnknownFlagIsInval) {
  EXPECT_EQ(attach(1, kEp1, 1u << 5), kSInval);
  EXPECT_EQ(engine_->domain_count(), 0u);
}

TEST_F(ViommuEngineTest, AttachBypassFlagIsUnknownWithoutBypassConfig) {
  start(EngineOptions{.bypass = false}, kFVersion1 | kFMapUnmap);
  EXPECT_EQ(attach(1, kEp1, kAttachFBypass), kSInval);
}

TEST_F(ViommuEngineTest, AttachOutsideTheDomainRangeIsRange) {
  start(EngineOptions{.domain_start = 1, .domain_end = 8, .bypass = false});
  EXPECT_EQ(attach(0, kEp1), kSRange);
  EXPECT_EQ(attach(9, kEp1), kSRange);
  EXPECT_EQ(attach(8, kEp1), kSOk);
}

TEST_F(ViommuEngineTest, AttachingAnAttachedEndpointMovesItAndTheEmptiedDomainDisappears) {
  ASSERT_EQ(attach(1, kEp1), kSOk);
  ASSERT_EQ(map(1, 0x10000, 0x10fff, 0x3000), kSOk);
  iommu::IoasId old = *engine_->domain_ioas(1);
  EXPECT_TRUE(reachable(*view1_, 0x10000));

  EXPECT_EQ(attach(2, kEp1), kSOk);
  EXPECT_EQ(ctx_->attached_to(dev1_), engine_->domain_ioas(2));
  EXPECT_FALSE(engine_->domain_ioas(1).has_value());
  EXPECT_FALSE(ctx_->info(old).ok()) << "the old domain's address space is destroyed";
  EXPECT_FALSE(reachable(*view1_, 0x10000));
}

TEST_F(ViommuEngineTest, AttachingTwiceToTheSameDomainKeepsItsMappings) {
  ASSERT_EQ(attach(1, kEp1), kSOk);
  ASSERT_EQ(map(1, 0x10000, 0x10fff, 0x3000), kSOk);
  EXPECT_EQ(attach(1, kEp1), kSOk);
  EXPECT_TRUE(reachable(*view1_, 0x10000));
}

TEST_F(ViommuEngineTest, EndpointsOfOneDomainShareOneAddressSpace) {
  ASSERT_EQ(attach(1, kEp1), kSOk);
  ASSERT_EQ(attach(1, kEp2), kSOk);
  EXPECT_EQ(ctx_->attached_to(dev1_), ctx_->attached_to(dev2_));
  ASSERT_EQ(map(1, 0x20000, 0x20fff, 0x5000), kSOk);
  std::memcpy(ram_.data() + 0x5000, "shared", 6);
  char buf[6];
  ASSERT_TRUE(view2_->read(Iova(0x20000), buf, 6).ok());
  EXPECT_EQ(std::memcmp(buf, "shared", 6), 0);
  EXPECT_TRUE(reachable(*view1_, 0x20000));
}

TEST_F(ViommuEngineTest, EndpointsOfDifferentDomainsAreIsolated) {
  ASSERT_EQ(attach(1, kEp1), kSOk);
  ASSERT_EQ(attach(2, kEp2), kSOk);
  ASSERT_EQ(map(1, 0x20000, 0x20fff, 0x5000), kSOk);
  EXPECT_TRUE(reachable(*view1_, 0x20000));
  EXPECT_FALSE(reachable(*view2_, 0x20000));
}

TEST_F(ViommuEngineTest, DomainDisappearsWithItsLastEndpoint) {
  ASSERT_EQ(attach(1, kEp1), kSOk);
  ASSERT_EQ(attach(1, kEp2), kSOk);
  ASSERT_EQ(map(1, 0x20000, 0x20fff, 0x5000), kSOk);
  iommu::IoasId ioas = *engine_->domain_ioas(1);
  EXPECT_EQ(detach(1, kEp1), kSOk);
  EXPECT_TRUE(engine_->domain_ioas(1).has_value());
  EXPECT_EQ(detach(1, kEp2), kSOk);
  EXPECT_FALSE(engine_->domain_ioas(1).has_value());
  EXPECT_FALSE(ctx_->info(ioas).ok());
  EXPECT_EQ(ctx_->stats().mappings, 1u) << "only guest RAM's own mapping is left";
  // The id can be reused for a fresh, empty domain.
  EXPECT_EQ(attach(1, kEp1), kSOk);
  EXPECT_FALSE(reachable(*view1_, 0x20000));
}

TEST_F(ViommuEngineTest, DetachOfAnUnknownEndpointIsNoent) { EXPECT_EQ(detach(1, 0x99), kSNoEnt); }

TEST_F(ViommuEngineTest, DetachFromADomainTheEndpointIsNotInIsInval) {
  ASSERT_EQ(attach(1, kEp1), kSOk);
  EXPECT_EQ(detach(2, kEp1), kSInval);
  EXPECT_EQ(detach(1, kEp2), kSInval);
  EXPECT_TRUE(ctx_->attached_to(dev1_).has_value());
}

TEST_F(ViommuEngineTest, DetachIgnoresReservedBytes) {
  ASSERT_EQ(attach(1, kEp1), kSOk);
  DetachBody b{};
  b.head.type = kTDetach;
  b.domain = 1;
  b.endpoint = kEp1;
  std::memset(b.reserved, 0xa5, sizeof(b.reserved));
  EXPECT_EQ(send(b), kSOk);
}

TEST_F(ViommuEngineTest, DetachedEndpointFaultsWithoutBypass) {
  ASSERT_EQ(attach(1, kEp1), kSOk);
  ASSERT_EQ(detach(1, kEp1), kSOk);
  EXPECT_FALSE(ctx_->attached_to(dev1_).has_value());
  uint8_t b;
  auto r = view1_->read(Iova(0x1000), &b, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.fault().reason, iommu::FaultReason::kNotAttached);
}

TEST_F(ViommuEngineTest, UnattachedEndpointsReachGuestRamInBypassMode) {
  start(EngineOptions{.bypass = true});
  EXPECT_EQ(ctx_->attached_to(dev1_), guest_ram_);
  std::memcpy(ram_.data() + 0x7000, "gpa", 3);
  char buf[3];
  ASSERT_TRUE(view1_->read(Iova(0x7000), buf, 3).ok());
  EXPECT_EQ(std::memcmp(buf, "gpa", 3), 0);
  ASSERT_EQ(attach(1, kEp1), kSOk);
  EXPECT_FALSE(reachable(*view1_, 0x7000));
  ASSERT_EQ(detach(1, kEp1), kSOk);
  EXPECT_EQ(ctx_->attached_to(dev1_), guest_ram_);
}

TEST_F(ViommuEngineTest, WritingBypassMovesUnattachedEndpointsOnly) {
  ASSERT_EQ(attach(1, kEp1), kSOk);
  EXPECT_FALSE(ctx_->attached_to(dev2_).has_value());
  engine_->write_bypass(1);
  EXPECT_EQ(engine_->config().bypass, 1);
  EXPECT_EQ(ctx_->attached_to(dev2_), guest_ram_);
  EXPECT_EQ(ctx_->attached_to(dev1_), engine_->domain_ioas(1));
  engine_->write_bypass(0);
  EXPECT_FALSE(ctx_->attached_to(dev2_).has_value());
}

TEST_F(ViommuEngineTest, BypassWriteIsIgnoredUnlessBypassConfigWasNegotiated) {
  start(EngineOptions{.bypass = false}, kFVersion1 | kFMapUnmap);
  engine_->write_bypass(1);
  EXPECT_EQ(engine_->config().bypass, 0);
  EXPECT_FALSE(ctx_->attached_to(dev1_).has_value());
}

TEST_F(ViommuEngineTest, BypassDomainGivesIdentityAccessAndRefusesMapAndUnmap) {
  ASSERT_EQ(attach(3, kEp1, kAttachFBypass), kSOk);
  EXPECT_EQ(ctx_->attached_to(dev1_), guest_ram_);
  EXPECT_TRUE(reachable(*view1_, 0x7000));
  EXPECT_EQ(map(3, 0x10000, 0x10fff, 0x1000), kSInval);
  EXPECT_EQ(unmap(3, 0, 0xfff), kSInval);
  EXPECT_EQ(attach(3, kEp2), kSInval) << "bypass flag inconsistent with the domain";
  ASSERT_EQ(attach(4, kEp2), kSOk);
  EXPECT_EQ(attach(4, kEp1, kAttachFBypass), kSInval);
  EXPECT_EQ(detach(3, kEp1), kSOk);
  EXPECT_FALSE(ctx_->attached_to(dev1_).has_value());
  EXPECT_EQ(ctx_->info(guest_ram_)->kind, iommu::IoasKind::kGuestRam) << "guest RAM survives";
}

TEST_F(ViommuEngineTest, ProbeReportsTheMsiDoorbellAsAReservedRegion) {
  ProbeBody b{};
  b.head.type = kTProbe;
  b.endpoint = kEp1;
  std::vector<uint8_t> bytes(sizeof(b));
  std::memcpy(bytes.data(), &b, sizeof(b));
  uint32_t probe_size = engine_->config().probe_size;
  auto reply = engine_->handle(bytes, probe_size + sizeof(ReqTail));
  ASSERT_TRUE(reply.has_value());
  ASSERT_EQ(reply->bytes.size(), probe_size + sizeof(ReqTail));
  EXPECT_EQ(reply->status(), kSOk);
  ProbeResvMem msi;
  std::memcpy(&msi, reply->bytes.data(), sizeof(msi));
  EXPECT_EQ(msi.head.type, kProbeTResvMem);
  EXPECT_EQ(msi.head.length, 20);
  EXPECT_EQ(msi.subtype, kResvMemTMsi);
  EXPECT_EQ(msi.start, 0xfee00000u);
  EXPECT_EQ(msi.end, 0xfeefffffu);
  for (size_t i = sizeof(msi); i < probe_size; ++i) ASSERT_EQ(reply->bytes[i], 0) << i;
}

TEST_F(ViommuEngineTest, ProbeOfAnUnknownEndpointIsNoent) {
  ProbeBody b{};
  b.head.type = kTProbe;
  b.endpoint = 0x99;
  std::vector<uint8_t> bytes(sizeof(b));
  std::memcpy(bytes.data(), &b, sizeof(b));
  uint32_t probe_size = engine_->config().probe_size;
  auto reply = engine_->handle(bytes, probe_size + sizeof(ReqTail));
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->offset, probe_size);
  EXPECT_EQ(reply->status(), kSNoEnt);
}

TEST_F(ViommuEngineTest, ProbeIntoATooSmallBufferWritesOnlyAnInvalTail) {
  ProbeBody b{};
  b.head.type = kTProbe;
  b.endpoint = kEp1;
  std::vector<uint8_t> bytes(sizeof(b));
  std::memcpy(bytes.data(), &b, sizeof(b));
  auto reply = engine_->handle(bytes, 32);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->offset, 28u);
  EXPECT_EQ(reply->bytes.size(), sizeof(ReqTail));
  EXPECT_EQ(reply->status(), kSInval);
}

TEST_F(ViommuEngineTest, UnknownRequestTypeGetsNoWrite) {
  std::vector<uint8_t> bytes(64, 0);
  bytes[0] = 0x06;
  EXPECT_FALSE(engine_->handle(bytes, 4).has_value());
  bytes[0] = 0xff;
  EXPECT_FALSE(engine_->handle(bytes, 4).has_value());
}

TEST_F(ViommuEngineTest, ConfigDescribesTheGeometry) {
  start(EngineOptions{.input_range = {Iova(0), Iova((uint64_t{1} << 39) - 1)},
                      .domain_start = 1,
                      .domain_end = 100,
                      .bypass = true});
  Config c = engine_->config();
  EXPECT_EQ(c.page_size_mask, 0x201000u);
  EXPECT_EQ(c.input_start, 0u);
  EXPECT_EQ(c.input_end, (uint64_t{1} << 39) - 1);
  EXPECT_EQ(c.domain_start, 1u);
  EXPECT_EQ(c.domain_end, 100u);
  EXPECT_EQ(c.probe_size, 512u);
  EXPECT_EQ(c.bypass, 1);
  uint64_t f = engine_->device_features();
  EXPECT_TRUE(f & kFVersion1);
  EXPECT_TRUE(f & kFMapUnmap);
  EXPECT_TRUE(f & kFProbe);
  EXPECT_TRUE(f & kFBypassConfig);
  EXPECT_FALSE(f & kFBypass) << "deprecated by BYPASS_CONFIG";
  EXPECT_FALSE(f & kFMmio) << "MAP_F_MMIO is not implemented";
}

TEST_F(ViommuEngineTest, ResetDetachesEveryEndpointAndDestroysEveryDomainButKeepsBypass) {
  ASSERT_EQ(attach(1, kEp1), kSOk);
  ASSERT_EQ(attach(2, kEp2), kSOk);
  ASSERT_EQ(map(1, 0x10000, 0x10fff, 0x1000), kSOk);
  engine_->write_bypass(1);
  engine_->reset();
  EXPECT_EQ(engine_->domain_count(), 0u);
  EXPECT_EQ(ctx_->list().size(), 1u) << "only guest RAM is left";
  EXPECT_EQ(engine_->config().bypass, 1);
  EXPECT_EQ(ctx_->attached_to(dev1_), guest_ram_);
  EXPECT_EQ(ctx_->attached_to(dev2_), guest_ram_);
  EXPECT_EQ(map(1, 0x10000, 0x10fff, 0x1000), kSUnsupp) << "features renegotiate after reset";
}

TEST_F(ViommuEngineTest, DestroyingTheEngineLeavesTheContextAsItFoundIt) {
  ASSERT_EQ(attach(1, kEp1), kSOk);
  ASSERT_EQ(map(1, 0x10000, 0x10fff, 0x1000), kSOk);
  engine_.reset();
  EXPECT_EQ(ctx_->list().size(), 1u);
  EXPECT_FALSE(ctx_->attached_to(dev1_).has_value());
}

TEST_F(ViommuEngineTest, AddingAnEndpointTwiceIsRefused) {
  EXPECT_FALSE(engine_->add_endpoint(kEp1, dev2_).ok());
  EXPECT_FALSE(engine_->add_endpoint(0x30, dev1_).ok());
}

TEST_F(ViommuEngineTest, TranslationFaultBecomesAFaultEvent) {
  int notified = 0;
  engine_->set_fault_notifier([&] { notified++; });
  ASSERT_EQ(attach(1, kEp1), kSOk);
  ASSERT_EQ(map(1, 0x10000, 0x10fff, 0x1000, kMapFRead), kSOk);
  uint8_t b = 0;
  auto w = view1_->write(Iova(0x10010), &b, 1);
  ASSERT_FALSE(w.ok());
  engine_->report_fault(dev1_, w.fault());
  auto r = view1_->read(Iova(0x50000), &b, 1);
  ASSERT_FALSE(r.ok());
  engine_->report_fault(dev1_, r.fault());
  EXPECT_EQ(notified, 2);

  auto ev = engine_->next_fault();
  ASSERT_TRUE(ev.has_value());
  EXPECT_EQ(ev->reason, kFaultRMapping);
  EXPECT_EQ(ev->flags, kFaultFWrite | kFaultFAddress);
  EXPECT_EQ(ev->endpoint, kEp1);
  EXPECT_EQ(ev->address, 0x10010u);
  ev = engine_->next_fault();
  ASSERT_TRUE(ev.has_value());
  EXPECT_EQ(ev->flags, kFaultFRead | kFaultFAddress);
  EXPECT_EQ(ev->address, 0x50000u);
  EXPECT_FALSE(engine_->next_fault().has_value());
}

TEST_F(ViommuEngineTest, FaultOfAnUnattachedEndpointIsADomainFault) {
  uint8_t b;
  auto r = view2_->read(Iova(0x1000), &b, 1);
  ASSERT_FALSE(r.ok());
  engine_->report_fault(dev2_, r.fault());
  auto ev = engine_->next_fault();
  ASSERT_TRUE(ev.has_value());
  EXPECT_EQ(ev->reason, kFaultRDomain);
  EXPECT_EQ(ev->endpoint, kEp2);
}

TEST_F(ViommuEngineTest, FaultOfUnknownReasonCarriesNoAddressOrAccess) {
  iommu::DmaFault f{Iova(0x1234), iommu::Access::kWrite, iommu::FaultReason::kUnknown};
  engine_->report_fault(dev1_, f);
  auto ev = engine_->next_fault();
  ASSERT_TRUE(ev.has_value());
  EXPECT_EQ(ev->reason, kFaultRUnknown);
  EXPECT_EQ(ev->flags, 0u);
  EXPECT_EQ(ev->address, 0u);
  EXPECT_EQ(ev->endpoint, kEp1);
}

TEST_F(ViommuEngineTest, FaultBacklogIsBoundedAndCountsDrops) {
  start(EngineOptions{.bypass = false, .fault_backlog = 3});
  iommu::DmaFault f{Iova(0x1000), iommu::Access::kRead, iommu::FaultReason::kUnmapped};
  for (int i = 0; i < 5; ++i) engine_->report_fault(dev1_, f);
  EXPECT_EQ(engine_->dropped_faults(), 2u);
  int delivered = 0;
  while (engine_->next_fault()) delivered++;
  EXPECT_EQ(delivered, 3);
}

TEST_F(ViommuEngineTest, FaultsAreReportedByEndpointIdToo) {
  iommu::DmaFault f{Iova(0x2000), iommu::Access::kWrite, iommu::FaultReason::kUnmapped};
  engine_->report_fault(kEp2, f);
  engine_->report_fault(uint32_t{0x99}, f);
  auto ev = engine_->next_fault();
  ASSERT_TRUE(ev.has_value());
  EXPECT_EQ(ev->endpoint, kEp2);
  EXPECT_EQ(ev->flags, kFaultFWrite | kFaultFAddress);
  EXPECT_FALSE(engine_->next_fault().has_value()) << "unknown endpoints raise no event";
}

TEST_F(ViommuEngineTest, ResetDropsQueuedFaults) {
  iommu::DmaFault f{Iova(0x1000), iommu::Access::kRead, iommu::FaultReason::kUnmapped};
  engine_->report_fault(dev1_, f);
  engine_->reset();
  EXPECT_FALSE(engine_->next_fault().has_value());
}

}  // namespace
}  // namespace ioasis::devices::virtio_iommu
