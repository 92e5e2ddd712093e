#include "notify/notify.h"

#include <map>

#include <nlohmann/json.hpp>
#include <thread>

#include "core/csv.h"
#include "core/json_output.h"
#include "core/log.h"
#include "crypto/hash.h"

namespace patchgate::notify {

namespace {

std::string T(int64_t us) { return FormatRfc3339(us / 1'000'000); }

}  // namespace


Mail ComposeMail(const incident::Scope& s, const incident::OrgScope& g, const std::string& from, const std::string& ack_url) {
  Mail m;
  m.from = from;
  m.to = g.contacts;
  if (!g.account_manager_email.empty()) m.cc.push_back(g.account_manager_email);
  std::string id = s.query.incident_id ? "#" + std::to_string(s.query.incident_id) : "";
  m.subject = "[patchgate] Security incident " + id + ": files your organisation downloaded from " + s.query.node +
              " may be compromised";
  std::string b = "Dear " + g.name + " security team,\n\n";
  b += "Between " + T(s.query.from) + " and " + T(s.query.to) + " our download node \"" + s.query.node +
       "\" served files that may have been altered";
  b += s.query.cause.empty() ? ".\n" : " (" + s.query.cause + ").\n";
  b += "According to our download records, your organisation received the following " +
       std::to_string(g.downloads.size()) + " file(s) from that node in that window:\n\n";
  size_t listed = 0;
  for (const auto& d : g.downloads) {
    if (listed == kMaxListedInBody) break;
    ++listed;
    b += "  - " + std::string(d.target_path) + "\n      downloaded " + T(d.started_at) + " by user " +
         std::string(d.username) + "\n      sha256 served: " +
         (d.sha256.empty() ? std::string("(not recorded)") : std::string(d.sha256)) + "\n      node: " + std::string(d.node) +
         "\n";
  }
  if (listed < g.downloads.size()) {
    b += "  ... and " + std::to_string(g.downloads.size() - listed) +
         " more: the attached downloads.csv lists all " + std::to_string(g.downloads.size()) + ".\n";
    std::string csv = "file,downloaded_at,user,sha256_served,node\r\n";
    for (const auto& d : g.downloads)
      csv += patchgate::CsvCell(d.target_path) + "," + T(d.started_at) + "," + patchgate::CsvCell(d.username) + "," +
             patchgate::CsvCell(d.sha256) + "," + patchgate::CsvCell(d.node) + "\r\n";
    m.attachments.push_back({"downloads.csv", "text/csv; charset=utf-8", std::move(csv)});
  }
  b += "\nWhat to do:\n"
       "  1. Do not install these files. Remove any copies, and check every machine they reached.\n"
       "  2. Compare the sha256 of any copy you kept with the signed value our repository publishes;\n"
       "     patchgate-client refuses any file that does not match its signed hash.\n"
       "  3. Download the files again from a verified node.\n"
       "  4. Tell us you have received this message: " + ack_url + "\n";
  if (!g.account_manager.empty())
    b += "\nYour account manager, " + g.account_manager + (g.phone.empty() ? "" : " (" + g.phone + ")") +
         ", is copied and will call you if we do not hear from you.\n";
  b += "\nThis message lists only your organisation's downloads.\n";
  m.body = b;
  return m;
}

Result<NotifyReport> NotifyIncident(Store& store, int64_t incident_id, Transport& t, const NotifyOptions& o,
                                    const Clock& clock) {
  if (o.from.empty() && !o.dry_run) return InvalidArgument("give the sender address (--from)");
  PG_ASSIGN_OR_RETURN(incident::ScopeQuery q, incident::QueryForIncident(store, incident_id));
  PG_ASSIGN_OR_RETURN(incident::Scope scope, incident::ComputeScope(store, store, q));
  NotifyReport rep;
  std::vector<Outgoing> out;
  for (const auto& g : scope.orgs) {
    if (g.org_id == 0) {
      rep.log.push_back(g.name + ": " + std::to_string(g.downloads.size()) +
                        " download(s) by unknown users; no organisation to notify (see the scope report)");
      continue;
    }
    Outgoing m;
    m.org_id = g.org_id;
    m.org_name = g.name;
    m.contacts = g.contacts;
    m.account_manager_email = g.account_manager_email;
    m.webhook_url = g.webhook_url;
    const incident::OrgScope* org = &g;
    m.mail = [&scope, org, &o](const std::string& ack_url) { return ComposeMail(scope, *org, o.from, ack_url); };
    m.webhook_json = [&scope, org, incident_id](const std::string& ack_url) {
      nlohmann::json body = {{"incident", incident_id}, {"organisation", org->name}, {"node", scope.query.node},
                             {"from", T(scope.query.from)}, {"to", T(scope.query.to)}, {"ack_url", ack_url},
                             {"downloads", nlohmann::json::array()}};
      for (const auto& d : org->downloads)
        body["downloads"].push_back({{"file", d.target_path}, {"time", T(d.started_at)}, {"user", d.username},
                                     {"sha256", d.sha256}, {"node", d.node}});
      return JsonText(body, -1);
    };
    out.push_back(std::move(m));
  }
  PG_ASSIGN_OR_RETURN(DeliveryReport dr,
                      Deliver(store, "incident:" + std::to_string(incident_id), incident_id, out, t, o, clock));
  rep.organisations = dr.organisations;
  rep.sent = dr.sent;
  rep.already_sent = dr.already_sent;
  rep.failed = dr.failed + dr.busy;
  rep.log.insert(rep.log.end(), dr.log.begin(), dr.log.end());
  return rep;
}

}  // namespace patchgate::notify
