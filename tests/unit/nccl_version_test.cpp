// The NCCL version check of the start-up log (comm/nccl_communicator.h): version codes
// of both numbering schemes, the line for matching and mismatched versions, and the
// library this process actually loaded. ncclGetVersion needs no GPU, so this runs on
// any build with NCCL; it skips on builds without.
#include "strata/comm/nccl_communicator.h"
#include "strata/core/build_info.h"

#include <gtest/gtest.h>

namespace strata::comm {
namespace {

#if STRATA_WITH_NCCL
TEST(NcclVersionTest, CodesOfBothSchemes) {
  EXPECT_EQ(nccl_version_name(22809), "2.28.9");
  EXPECT_EQ(nccl_version_name(22803), "2.28.3");
  EXPECT_EQ(nccl_version_name(21003), "2.10.3");
  EXPECT_EQ(nccl_version_name(2804), "2.8.4");  // before 2.9: major * 1000 + minor * 100 + patch
}

TEST(NcclVersionTest, MismatchIsSpeltOutAndAMatchIsNot) {
  NcclVersions same{22809, 22809, "/opt/nccl/libnccl.so.2"};
  EXPECT_FALSE(same.mismatch());
  EXPECT_EQ(describe_nccl_versions(same), "NCCL 2.28.9 (compiled against 2.28.9), loaded from /opt/nccl/libnccl.so.2");
  NcclVersions other{22809, 22803, "/usr/lib/x86_64-linux-gnu/libnccl.so.2"};
  EXPECT_TRUE(other.mismatch());
  const std::string line = describe_nccl_versions(other);
  EXPECT_EQ(line.rfind("NCCL 2.28.3 (compiled against 2.28.9), loaded from /usr/lib/x86_64-linux-gnu/libnccl.so.2: ",
                       0),
            0u)
      << line;
  EXPECT_NE(line.find("not the one nccl.h describes"), std::string::npos) << line;
}

TEST(NcclVersionTest, ThisProcessLoadedAnNccl) {
  NcclVersions v = nccl_versions();
  EXPECT_GE(v.header, 20000) << "NCCL_VERSION_CODE";
  EXPECT_GE(v.runtime, 20000) << "ncclGetVersion";
  EXPECT_NE(v.library.find("nccl"), std::string::npos) << v.library;
  std::printf("%s\n", describe_nccl_versions(v).c_str());
}
#else
TEST(NcclVersionTest, BuiltWithoutNccl) { GTEST_SKIP() << "built without NCCL"; }
#endif

}  // namespace
}  // namespace strata::comm
