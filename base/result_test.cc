#include "base/result.h"

#include <gtest/gtest.h>

#include "base/address.h"

namespace ioasis {
namespace {

Result<int> half(int x) {
  if (x % 2) return Error(Errc::kInvalidArgument, "odd: " + std::to_string(x));
  return x / 2;
}

Result<int> quarter(int x) {
  IOASIS_ASSIGN_OR_RETURN(int h, half(x));
  return half(h);
}

TEST(Result, CarriesValueOrError) {
  EXPECT_EQ(*quarter(8), 2);
  auto r = quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::kInvalidArgument);
  EXPECT_EQ(r.error().message(), "odd: 3");
}

TEST(Result, ErrnoErrorsNameTheCall) {
  Error e = Error::from_errno("open /nope", ENOENT);
  EXPECT_EQ(e.sys_errno(), ENOENT);
  EXPECT_EQ(e.context("loading kernel").message(),
            "loading kernel: open /nope: No such file or directory");
}

TEST(Address, RangeFitsRejectsWrap) {
  EXPECT_TRUE(range_fits(0, 0));
  EXPECT_TRUE(range_fits(UINT64_MAX, 1));
  EXPECT_FALSE(range_fits(UINT64_MAX, 2));
  EXPECT_TRUE(range_fits(0, UINT64_MAX));
  EXPECT_EQ(Gpa(0x1000) + 0x10, Gpa(0x1010));
  EXPECT_EQ(Iova(0x2000) - Iova(0x1000), 0x1000u);
}

}  // namespace
}  // namespace ioasis
