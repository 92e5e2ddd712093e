#include "tuf/naming.h"

#include <gtest/gtest.h>

namespace patchgate::tuf {
namespace {

TEST(Naming, MetadataNames) {
  EXPECT_EQ(VersionedMetadataName(3, "root"), "3.root.json");
  EXPECT_EQ(VersionedMetadataName(12, "product.office"), "12.product.office.json");
  EXPECT_EQ(MetadataName("snapshot"), "snapshot.json");
  // Roles named by other repositories are quoted like python-tuf / tuf-js.
  EXPECT_EQ(VersionedMetadataName(1, "a/b c"), "1.a%2Fb%20c.json");
  EXPECT_EQ(QuoteRoleName("products/office"), "products%2Foffice");
  EXPECT_EQ(UnquoteRoleName("products%2Foffice"), "products/office");
  EXPECT_EQ(UnquoteRoleName("100%"), "100%");
  EXPECT_EQ(UnquoteRoleName("%zz%4"), "%zz%4");
}

// #9.3: every role patchgate writes is one URL path segment that nothing rewrites.
TEST(Naming, ProductRolesAreSafeSinglePathSegments) {
  for (const char* product : {"office", "a", "Mail-Server_2.1", "x.y"}) {
    std::string role = ProductRoleName(product);
    EXPECT_TRUE(IsSafeRoleName(role)) << role;
    EXPECT_EQ(QuoteRoleName(role), role);
    EXPECT_EQ(ProductOfRole(role), std::string(product));
    std::string bin = ProductBinPrefix(product) + "-3f";
    EXPECT_TRUE(IsSafeRoleName(bin)) << bin;
    EXPECT_EQ(QuoteRoleName(bin), bin);
    EXPECT_FALSE(ProductOfRole(bin).has_value());
  }
  // A product role can never equal another product's hash bin.
  EXPECT_NE(ProductRoleName("office-bins-00"), ProductBinPrefix("office") + "-00");
  for (const char* bad : {"", ".", "..", ".hidden", "a/b", "a%2Fb", "a b", "a\\b", "é", "a~b"})
    EXPECT_FALSE(IsSafeRoleName(bad)) << bad;
  EXPECT_FALSE(IsSafeRoleName(LegacyProductRoleName("office")));
  EXPECT_FALSE(ProductOfRole("targets").has_value());
  EXPECT_FALSE(ProductOfRole("product.").has_value());
}

TEST(Naming, ConsistentTargetNamesRoundTrip) {
  std::string h256(64, 'a'), h512(128, '0');
  EXPECT_EQ(ConsistentTargetName("office/setup.exe", h256), "office/" + h256 + ".setup.exe");
  EXPECT_EQ(ConsistentTargetName("flat.bin", h256), h256 + ".flat.bin");
  EXPECT_EQ(ConsistentTargetName("a/b/c.txt", h512), "a/b/" + h512 + ".c.txt");
  for (const auto& [path, hash] : std::vector<std::pair<std::string, std::string>>{
           {"office/setup.exe", h256}, {"flat.bin", h256}, {"a/b/c.txt", h512}}) {
    auto parsed = ParseConsistentTargetName(ConsistentTargetName(path, hash));
    ASSERT_TRUE(parsed.has_value()) << path;
    EXPECT_EQ(parsed->target_path, path);
    EXPECT_EQ(parsed->hash_hex, hash);
  }
  EXPECT_FALSE(ParseConsistentTargetName("office/setup.exe").has_value());
  EXPECT_FALSE(ParseConsistentTargetName("office/" + h256 + ".").has_value());       // no name
  EXPECT_FALSE(ParseConsistentTargetName("office/" + std::string(64, 'G') + ".x").has_value());
  EXPECT_FALSE(ParseConsistentTargetName("office/" + std::string(63, 'a') + ".x").has_value());
}

}  // namespace
}  // namespace patchgate::tuf

namespace patchgate::tuf {
namespace {

TEST(Naming, VersionedMetadataNamesParseBack) {
  for (std::string role : {"root", "snapshot", "targets", "product.office", "bins.office-0a", "a/b c"}) {
    auto p = ParseVersionedMetadataName(VersionedMetadataName(42, role));
    ASSERT_TRUE(p) << role;
    EXPECT_EQ(p->version, 42);
    EXPECT_EQ(p->role, role);
  }
  for (const char* bad : {"timestamp.json", "root.json", "1.root", "01.root.json", "x1.root.json", ".root.json",
                          "1..json", "1.json", "12345678901234567890.root.json", ""})
    EXPECT_FALSE(ParseVersionedMetadataName(bad)) << bad;
}

}  // namespace
}  // namespace patchgate::tuf
