// The CSAF provider handler: trusted-provider layout (requirements 1-20 where they are the
// server's) and the embargo (nothing before publication to anyone outside the audience).
#include "advisory/provider.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace patchgate::advisory {
namespace {

constexpr int64_t kNow = 1'790'000'000'000'000;
constexpr int64_t kAudienceOrg = 7, kOtherOrg = 8;

class ProviderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    p_.base_url = "https://downloads.vendor.example";
    Advisory embargoed;
    embargoed.id = "PG-2026-0001";
    embargoed.product = "hushproduct";
    embargoed.title = "Hush hush";
    embargoed.summary = "secret flaw";
    embargoed.state = "scheduled";
    embargoed.revisions = {{"1", kNow - 1000, "Initial version"}};
    embargoed.issued = Issued{"AMBER", "interim", "{\"document\":\"hush\"}", std::string(64, 'a'), std::string(128, 'b'),
                              "-----BEGIN PGP SIGNATURE-----\nhush\n-----END PGP SIGNATURE-----\n", kNow - 1000};
    Advisory pub;
    pub.id = "PG-2026-0002";
    pub.product = "webserver";
    pub.title = "Public one";
    pub.summary = "public flaw";
    pub.state = "published";
    pub.revisions = {{"1", kNow - 5000, "Initial version"}, {"2", kNow - 2000, "Public release"}};
    pub.issued = Issued{"WHITE", "final", "{\"document\":\"public\"}", std::string(64, 'c'), std::string(128, 'd'),
                        "-----BEGIN PGP SIGNATURE-----\npub\n-----END PGP SIGNATURE-----\n", kNow - 2000};
    Advisory white_unpublished = embargoed;  // issued as WHITE before publication: still embargoed
    white_unpublished.id = "PG-2026-0003";
    white_unpublished.issued->tlp = "WHITE";
    s_.advisories = {embargoed, pub, white_unpublished};
    s_.audience["PG-2026-0001"] = {kAudienceOrg};
    s_.audience["PG-2026-0003"] = {kAudienceOrg};
    s_.fingerprint = "ABCDEF0123456789ABCDEF0123456789ABCDEF01";
    s_.public_key_armored = "-----BEGIN PGP PUBLIC KEY BLOCK-----\nkey\n-----END PGP PUBLIC KEY BLOCK-----\n";
  }
  HttpResponse Get(const std::string& path, int64_t org = 0, const std::string& method = "GET") {
    auto r = HandleProvider(p_, s_, method, path, org, kNow);
    EXPECT_TRUE(r.has_value()) << path;
    return r.value_or(HttpResponse{});
  }
  static std::string Header(const HttpResponse& r, const std::string& name) {
    for (const auto& [k, v] : r.headers)
      if (k == name) return v;
    return "";
  }
  Publisher p_;
  ProviderSnapshot s_;
};

// Every URL that could reveal an advisory, or the fact that it exists.
std::vector<std::string> EveryUrl() {
  std::vector<std::string> urls = {"/.well-known/csaf/", "/.well-known/csaf/provider-metadata.json",
                                   "/.well-known/csaf/service.json", "/.well-known/security.txt",
                                   "/.well-known/csaf/category-hushproduct.json"};
  for (const char* l : {"white", "green", "amber", "red"}) {
    std::string base = std::string("/.well-known/csaf/") + l + "/";
    urls.push_back(std::string("/.well-known/csaf/feed-tlp-") + l + ".json");
    for (const char* s : {"", "index.txt", "changes.csv", "2026/"}) urls.push_back(base + s);
    for (const char* id : {"pg-2026-0001", "pg-2026-0003"})
      for (const char* ext : {".json", ".json.sha256", ".json.sha512", ".json.asc"})
        urls.push_back(base + "2026/" + id + ext);
  }
  return urls;
}

TEST_F(ProviderTest, EmbargoNothingAboutAnUnpublishedAdvisoryReachesAnyoneOutsideItsAudience) {
  for (int64_t org : {int64_t{0}, kOtherOrg}) {
    for (const auto& url : EveryUrl()) {
      for (const char* method : {"GET", "HEAD"}) {
        HttpResponse r = Get(url, org, method);
        EXPECT_NE(r.status, 403) << url << " (404, never 403)";
        for (const char* secret : {"pg-2026-0001", "PG-2026-0001", "pg-2026-0003", "PG-2026-0003", "hush", "Hush", "secret"})
          EXPECT_EQ(r.body.find(secret), std::string::npos) << url << " org " << org << " reveals " << secret << ":\n" << r.body;
        if (url.find("0001") != std::string::npos || url.find("0003") != std::string::npos || url.find("hushproduct") != std::string::npos ||
            url.find("/amber/") != std::string::npos)
          EXPECT_EQ(r.status, 404) << url << " org " << org;
      }
    }
  }
}

TEST_F(ProviderTest, TheAudienceSeesTheEmbargoedDocumentWithHashesAndSignatureNeverCached) {
  HttpResponse doc = Get("/.well-known/csaf/amber/2026/pg-2026-0001.json", kAudienceOrg);
  EXPECT_EQ(doc.status, 200);
  EXPECT_EQ(doc.body, "{\"document\":\"hush\"}");
  EXPECT_EQ(Header(doc, "Cache-Control"), "private, no-store");
  EXPECT_EQ(Get("/.well-known/csaf/amber/2026/pg-2026-0001.json.sha256", kAudienceOrg).body,
            std::string(64, 'a') + "  pg-2026-0001.json\n");
  EXPECT_EQ(Get("/.well-known/csaf/amber/2026/pg-2026-0001.json.asc", kAudienceOrg).status, 200);
  auto feed = nlohmann::json::parse(Get("/.well-known/csaf/feed-tlp-amber.json", kAudienceOrg).body);
  ASSERT_EQ(feed["feed"]["entry"].size(), 1u);
  EXPECT_EQ(feed["feed"]["entry"][0]["id"], "PG-2026-0001");
  EXPECT_EQ(Get("/.well-known/csaf/amber/index.txt", kAudienceOrg).body, "2026/pg-2026-0001.json\n");
  // WHITE-labelled but unpublished: the audience only.
  EXPECT_EQ(Get("/.well-known/csaf/white/2026/pg-2026-0003.json", kAudienceOrg).status, 200);
}

TEST_F(ProviderTest, Req01to04_PublishedWhiteDocumentsArePublicUnderLowerCaseNamesInYearFolders) {
  HttpResponse r = Get("/.well-known/csaf/white/2026/pg-2026-0002.json");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(Header(r, "Content-Type"), "application/json");
  EXPECT_EQ(r.body, "{\"document\":\"public\"}");
  EXPECT_EQ(Get("/.well-known/csaf/white/2026/PG-2026-0002.json").status, 404);  // req. 2: lower case only
  EXPECT_EQ(Get("/.well-known/csaf/white/2025/pg-2026-0002.json").status, 404);  // req. 11: its year
}

TEST_F(ProviderTest, Req05_OtherLabelsNeedAnAudienceToken) {
  EXPECT_EQ(Get("/.well-known/csaf/amber/2026/pg-2026-0001.json").status, 404);
  EXPECT_EQ(Get("/.well-known/csaf/amber/2026/pg-2026-0001.json", kOtherOrg).status, 404);
  EXPECT_EQ(Get("/.well-known/csaf/amber/2026/pg-2026-0001.json", kAudienceOrg).status, 200);
}

TEST_F(ProviderTest, Req06_NoRedirects) {
  for (const auto& url : EveryUrl()) {
    HttpResponse r = Get(url, kAudienceOrg);
    EXPECT_TRUE(r.status < 300 || r.status >= 400) << url;
    EXPECT_EQ(Header(r, "Location"), "") << url;
  }
}

TEST_F(ProviderTest, Req07_09_ProviderMetadataAtTheWellKnownUrl) {
  HttpResponse r = Get("/.well-known/csaf/provider-metadata.json");
  ASSERT_EQ(r.status, 200);
  auto m = nlohmann::json::parse(r.body);
  EXPECT_EQ(m["role"], "csaf_trusted_provider");
  EXPECT_EQ(m["metadata_version"], "2.0");
  EXPECT_EQ(m["canonical_url"], "https://downloads.vendor.example/.well-known/csaf/provider-metadata.json");
  EXPECT_EQ(m["public_openpgp_keys"][0]["fingerprint"], s_.fingerprint);
  EXPECT_EQ(m["distributions"][0]["rolie"]["feeds"].size(), 4u);
  EXPECT_EQ(m["distributions"][0]["directory_url"], "https://downloads.vendor.example/.well-known/csaf/white/");
}

TEST_F(ProviderTest, Req08_SecurityTxtPointsAtTheProviderMetadata) {
  HttpResponse r = Get("/.well-known/security.txt");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("CSAF: https://downloads.vendor.example/.well-known/csaf/provider-metadata.json\n"), std::string::npos);
  EXPECT_NE(r.body.find("Contact: "), std::string::npos);
  EXPECT_NE(r.body.find("Expires: "), std::string::npos);
}

TEST_F(ProviderTest, Req12_13_IndexTxtAndChangesCsv) {
  EXPECT_EQ(Get("/.well-known/csaf/white/index.txt").body, "2026/pg-2026-0002.json\n");
  std::string changes = Get("/.well-known/csaf/white/changes.csv").body;
  EXPECT_EQ(changes, "\"2026/pg-2026-0002.json\",\"" + FormatRfc3339((kNow - 2000) / 1'000'000) + "\"\n");
}

TEST_F(ProviderTest, Req14_DirectoryListings) {
  HttpResponse root = Get("/.well-known/csaf/white/");
  EXPECT_EQ(root.status, 200);
  EXPECT_NE(root.body.find("href=\"2026/\""), std::string::npos);
  HttpResponse year = Get("/.well-known/csaf/white/2026/");
  EXPECT_NE(year.body.find("href=\"pg-2026-0002.json.asc\""), std::string::npos);
}

TEST_F(ProviderTest, Req15_16_17_RolieFeedServiceAndCategoryDocuments) {
  auto feed = nlohmann::json::parse(Get("/.well-known/csaf/feed-tlp-white.json").body);
  ASSERT_EQ(feed["feed"]["entry"].size(), 1u);
  auto& e = feed["feed"]["entry"][0];
  EXPECT_EQ(e["content"]["src"], "https://downloads.vendor.example/.well-known/csaf/white/2026/pg-2026-0002.json");
  EXPECT_EQ(e["format"]["version"], "2.0");
  auto service = nlohmann::json::parse(Get("/.well-known/csaf/service.json").body);
  EXPECT_EQ(service["service"]["workspace"][0]["collection"].size(), 4u);
  EXPECT_EQ(Get("/.well-known/csaf/category-webserver.json").status, 200);
}

TEST_F(ProviderTest, Req18_19_20_HashesSignatureAndPublicKey) {
  EXPECT_EQ(Get("/.well-known/csaf/white/2026/pg-2026-0002.json.sha256").body, std::string(64, 'c') + "  pg-2026-0002.json\n");
  EXPECT_EQ(Get("/.well-known/csaf/white/2026/pg-2026-0002.json.sha512").body, std::string(128, 'd') + "  pg-2026-0002.json\n");
  HttpResponse asc = Get("/.well-known/csaf/white/2026/pg-2026-0002.json.asc");
  EXPECT_EQ(Header(asc, "Content-Type"), "application/pgp-signature");
  HttpResponse key = Get("/.well-known/csaf/openpgp/" + s_.fingerprint + ".asc");
  EXPECT_EQ(key.status, 200);
  EXPECT_EQ(key.body, s_.public_key_armored);
}

TEST_F(ProviderTest, OnlyGetAndHeadAndNoTraversal) {
  EXPECT_EQ(Get("/.well-known/csaf/provider-metadata.json", 0, "POST").status, 405);
  EXPECT_EQ(Get("/.well-known/csaf/white/../amber/2026/pg-2026-0001.json", kOtherOrg).status, 404);
  EXPECT_EQ(Get("/.well-known/csaf/white/2026/pg-2026-0002.json%00").status, 404);
  EXPECT_FALSE(HandleProvider(p_, s_, "GET", "/targets/x", 0, kNow).has_value());
  EXPECT_FALSE(HandleProvider(p_, s_, "GET", "/.well-known/acme-challenge/x", 0, kNow).has_value());
  EXPECT_EQ(Get("/.well-known/csaf/provider-metadata.json?x=1").status, 200);
}

}  // namespace
}  // namespace patchgate::advisory
