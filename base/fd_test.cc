#include "base/fd.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/eventfd.h>

namespace ioasis {
namespace {

TEST(UniqueFd, ClosesOnDestruction) {
  int raw;
  {
    UniqueFd fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(fd.valid());
    raw = fd.get();
  }
  EXPECT_EQ(::fcntl(raw, F_GETFD), -1);
}

TEST(EventFd, SignalThenConsume) {
  auto ev = EventFd::create(EFD_NONBLOCK);
  ASSERT_TRUE(ev.ok());
  EXPECT_EQ(*ev->consume(), 0u);
  ASSERT_TRUE(ev->signal(3).ok());
  EXPECT_EQ(*ev->consume(), 3u);
}

TEST(MappedRegion, MapsAnonymousMemory) {
  auto m = MappedRegion::map(4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_TRUE(m.ok());
  m->data()[4095] = 7;
  EXPECT_EQ(m->data()[4095], 7);
}

}  // namespace
}  // namespace ioasis
