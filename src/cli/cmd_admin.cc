// `patchgate org | user | grant | downloads` (`nodes` is in cmd_node.cc): the administrative store commands.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <regex>

#include "cli/commands.h"
#include "cli/common_flags.h"
#include "core/clock.h"
#include "core/csv.h"
#include "core/json_output.h"
#include "core/names.h"
#include "core/text.h"
#include "crypto/hash.h"

namespace patchgate::cli {

namespace {

struct AdminFlags {
  std::string store;
  std::string name, tier, account_manager, phone, webhook, username, product;
  std::vector<std::string> contacts;
  std::string org, user, node, since, until;
  bool csv = false, json = false;
};

// Text from the store as it may be printed on a terminal: no escape sequence gets through.
std::string Term(const std::string& s) { return EscapeForTerminal(s); }

int OrgAdd(AdminFlags& f) {
  if (Status st = ValidateOrganisationName(f.name); !st.ok()) return ReportError(st);
  Organisation o;
  o.name = f.name;
  o.tier = f.tier;
  if (!f.account_manager.empty()) {
    static const std::regex re(R"(^\s*(.*?)\s*<([^<>\s]+@[^<>\s]+)>\s*$)");
    std::smatch m;
    if (std::regex_match(f.account_manager, m, re)) {
      o.account_manager_name = m[1];
      o.account_manager_email = m[2];
    } else if (f.account_manager.find('@') != std::string::npos) {
      o.account_manager_email = f.account_manager;
    } else {
      return ReportError(InvalidArgument("--account-manager must look like \"Name <email>\""));
    }
  }
  o.account_manager_phone = f.phone;
  for (const auto& c : f.contacts)
    if (c.find('@') == std::string::npos || c.find(',') != std::string::npos)
      return ReportError(InvalidArgument("--contact '" + Term(c) + "' is not an e-mail address"));
  o.security_contacts = f.contacts;
  o.webhook_url = f.webhook;
  return WithStore(f.store, [&](Store& s) {
    auto id = s.AddOrganisation(o);
    if (!id.ok()) return ReportError(id.status());
    std::printf("added organisation %s (%s)\n", Term(o.name).c_str(), o.tier.c_str());
    return kExitOk;
  });
}

int OrgList(AdminFlags& f) {
  return WithStore(f.store, [&](Store& s) {
    auto orgs = s.ListOrganisations();
    if (!orgs.ok()) return ReportError(orgs.status());
    if (f.json) {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& o : *orgs)
        arr.push_back({{"name", o.name}, {"tier", o.tier}, {"account_manager", o.account_manager_name},
                       {"account_manager_email", o.account_manager_email}, {"phone", o.account_manager_phone},
                       {"contacts", o.security_contacts}, {"webhook", o.webhook_url}});
      std::printf("%s\n", JsonText(arr).c_str());
      return kExitOk;
    }
    std::printf("%-24s %-9s %-32s %s\n", "ORGANISATION", "TIER", "ACCOUNT MANAGER", "SECURITY CONTACTS");
    for (const auto& o : *orgs) {
      std::string am = o.account_manager_name + (o.account_manager_email.empty() ? "" : " <" + o.account_manager_email + ">");
      std::string contacts;
      for (const auto& c : o.security_contacts) contacts += (contacts.empty() ? "" : ", ") + c;
      std::printf("%-24s %-9s %-32s %s\n", Term(o.name).c_str(), Term(o.tier).c_str(), Term(am).c_str(),
                  Term(contacts).c_str());
    }
    return kExitOk;
  });
}

int UserAdd(AdminFlags& f) {
  if (Status st = ValidateUserName(f.username); !st.ok()) return ReportError(st);
  return WithStore(f.store, [&](Store& s) {
    std::string token = "pgt_" + HexEncode(RandomBytes(24));
    auto id = s.AddUser(f.org, f.username, Sha256Hex(token));
    if (!id.ok()) return ReportError(id.status());
    std::fprintf(stderr, "added user %s to %s; the token is shown once, store it now:\n", Term(f.username).c_str(),
                 Term(f.org).c_str());
    std::printf("%s\n", token.c_str());
    return kExitOk;
  });
}

int UserRevoke(AdminFlags& f) {
  return WithStore(f.store, [&](Store& s) {
    Status st = s.RevokeUser(f.username);
    if (!st.ok()) return ReportError(st);
    std::printf("revoked %s\n", Term(f.username).c_str());
    return kExitOk;
  });
}

int GrantCmd(AdminFlags& f) {
  if (Status st = ValidateProductName(f.product); !st.ok())
    return ReportError(st.WithContext("cannot grant: this product can never be published"));
  return WithStore(f.store, [&](Store& s) {
    Status st = s.Grant(f.org, f.product);
    if (!st.ok()) return ReportError(st);
    std::printf("%s may download %s\n", Term(f.org).c_str(), f.product.c_str());
    return kExitOk;
  });
}

int DownloadsCmd(AdminFlags& f) {
  if (f.csv && f.json) return ReportError(InvalidArgument("choose one of --csv and --json"));
  DownloadQuery q;
  if (!f.org.empty()) q.org = f.org;
  if (!f.user.empty()) q.user = f.user;
  if (!f.node.empty()) q.node = f.node;
  auto since = ParseTimeFlag(f.since, "--since");
  if (!since.ok()) return ReportError(since.status());
  auto until = ParseTimeFlag(f.until, "--until");
  if (!until.ok()) return ReportError(until.status());
  q.since = *since;
  q.until = *until;
  return WithStore(f.store, [&](Store& s) {
    auto rows = s.QueryDownloads(q);
    if (!rows.ok()) return ReportError(rows.status());
    auto t = [](const std::optional<int64_t>& v) { return v ? FormatRfc3339Micros(*v) : std::string(); };
    const int64_t now = SystemClock::Get().NowMicros();
    if (f.json) {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& d : *rows)
        arr.push_back({{"id", d.id}, {"started_at", FormatRfc3339Micros(d.started_at)}, {"ended_at", t(d.ended_at)},
                       {"node", d.node}, {"user", d.username}, {"organisation", d.org_name}, {"target", d.target_path},
                       {"sha256", d.sha256}, {"range", d.range}, {"bytes", d.bytes_sent},
                       {"outcome", DisplayOutcome(d, now)}, {"remote_addr", d.remote_addr},
                       {"user_agent", d.user_agent}, {"source", d.source}, {"detail", d.detail}});
      std::printf("%s\n", JsonText(arr).c_str());
    } else if (f.csv) {
      std::string out;
      CsvWriter w(&out);
      w.Row({"id", "started_at", "ended_at", "node", "user", "organisation", "target", "sha256", "range", "bytes",
             "outcome", "remote_addr", "user_agent", "source", "detail"});
      for (const auto& d : *rows) {
        w.Number(d.id).Text(FormatRfc3339Micros(d.started_at)).Text(t(d.ended_at)).Text(d.node).Text(d.username);
        w.Text(d.org_name).Text(d.target_path).Text(d.sha256).Text(d.range).Number(uint64_t{d.bytes_sent});
        w.Text(DisplayOutcome(d, now)).Text(d.remote_addr).Text(d.user_agent).Text(d.source).Text(d.detail).EndRow();
      }
      std::fputs(out.c_str(), stdout);
    } else {
      std::printf("%-27s %-10s %-12s %-16s %-32s %10s %-11s %s\n", "STARTED", "NODE", "USER", "ORGANISATION", "TARGET",
                  "BYTES", "OUTCOME", "SHA256");
      size_t completing = 0;
      for (const auto& d : *rows) {
        std::string_view outcome = DisplayOutcome(d, now);
        completing += outcome == "completing";
        std::string bytes = outcome == "completing" ? "-" : std::to_string(d.bytes_sent);
        std::printf("%-27s %-10s %-12s %-16s %-32s %10s %-11s %.16s…\n", FormatRfc3339Micros(d.started_at).c_str(),
                    Term(d.node).c_str(), Term(d.username).c_str(), Term(d.org_name).c_str(),
                    Term(d.target_path).c_str(), bytes.c_str(), std::string(outcome).c_str(), Term(d.sha256).c_str());
        if (!d.detail.empty()) std::printf("%27s %s\n", "", Term(d.detail).c_str());  // why it ended so
      }
      std::printf("%zu download(s)\n", rows->size());
      if (completing)
        std::printf("%zu completing: started under %lld s ago and not recorded as finished yet (still streaming, or "
                    "finished and its record is being written); run again for the final outcome\n",
                    completing, static_cast<long long>(kCompletingWindowMicros / 1'000'000));
    }
    return kExitOk;
  });
}

}  // namespace

void RegisterAdminCommands(CLI::App& app, Context& ctx) {
  auto f = std::make_shared<AdminFlags>();

  auto* org = app.add_subcommand("org", "Customer organisations");
  org->require_subcommand(1);
  auto* org_add = org->add_subcommand("add", "Add an organisation");
  org_add->add_option("NAME", f->name, "Organisation name")->required();
  org_add->add_option("--tier", f->tier, "premier, gold or standard")->required()
      ->check(CLI::IsMember({"premier", "gold", "standard"}));
  org_add->add_option("--account-manager", f->account_manager, "\"Name <email>\" of the vendor's account manager");
  org_add->add_option("--phone", f->phone, "Phone number for the call list");
  org_add->add_option("--contact", f->contacts, "Security contact e-mail (repeatable)");
  org_add->add_option("--webhook", f->webhook, "Webhook URL for incident notifications");
  AddStoreFlag(org_add, &f->store);
  org_add->final_callback([f, &ctx] { ctx.exit_code = OrgAdd(*f); });
  auto* org_list = org->add_subcommand("list", "List organisations");
  org_list->add_flag("--json", f->json, "JSON output");
  AddStoreFlag(org_list, &f->store);
  org_list->final_callback([f, &ctx] { ctx.exit_code = OrgList(*f); });

  auto* user = app.add_subcommand("user", "Download users and their tokens");
  user->require_subcommand(1);
  auto* user_add = user->add_subcommand("add", "Add a user; prints a new token once (only its hash is stored)");
  user_add->add_option("ORG", f->org, "Organisation")->required();
  user_add->add_option("USERNAME", f->username, "User name")->required();
  AddStoreFlag(user_add, &f->store);
  user_add->final_callback([f, &ctx] { ctx.exit_code = UserAdd(*f); });
  auto* user_revoke = user->add_subcommand("revoke", "Revoke a user's token");
  user_revoke->add_option("USERNAME", f->username, "User name")->required();
  AddStoreFlag(user_revoke, &f->store);
  user_revoke->final_callback([f, &ctx] { ctx.exit_code = UserRevoke(*f); });

  auto* grant = app.add_subcommand("grant", "Entitle an organisation to a product");
  grant->add_option("ORG", f->org, "Organisation")->required();
  grant->add_option("PRODUCT", f->product, "Product")->required();
  AddStoreFlag(grant, &f->store);
  grant->final_callback([f, &ctx] { ctx.exit_code = GrantCmd(*f); });

  auto* dl = app.add_subcommand("downloads", "The download audit trail");
  dl->add_option("--org", f->org, "Only this organisation");
  dl->add_option("--user", f->user, "Only this user");
  dl->add_option("--node", f->node, "Only this node");
  dl->add_option("--since", f->since, "Downloads still running at or after this RFC 3339 time");
  dl->add_option("--until", f->until, "Downloads started at or before this RFC 3339 time");
  dl->add_flag("--csv", f->csv, "CSV output");
  dl->add_flag("--json", f->json, "JSON output");
  AddStoreFlag(dl, &f->store);
  dl->final_callback([f, &ctx] { ctx.exit_code = DownloadsCmd(*f); });
}

}  // namespace patchgate::cli
