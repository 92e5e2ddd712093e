#include "advisory/runner.h"

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "advisory/cvss.h"
#include "advisory/openpgp.h"
#include "core/log.h"
#include "crypto/hash.h"

namespace patchgate::advisory {

namespace {

std::string T(int64_t micros) { return FormatRfc3339(micros / 1'000'000); }

}  // namespace

Status Issue(Store& store, const std::string& id, const std::string& tlp, const std::string& status, const RunOptions& o,
             const Clock& clock) {
  PG_ASSIGN_OR_RETURN(Advisory cur, Load(store, id));
  PG_ASSIGN_OR_RETURN(std::vector<TargetRecord> targets, ProductTargets(store, cur.product, o.repo_dir));
  if (o.gnupg_home.empty()) return InvalidArgument("issuing a document needs the signing key: give --repo DIR");
  return Modify(store, id, [&](Advisory& a) -> Status {
    int64_t now = clock.NowMicros();
    if (status == "final" && a.state != "published") {
      if (a.issued) a.revisions.push_back({std::to_string(a.revisions.size() + 1), now, "Public release"});
      else a.revisions.back().date = now;
      a.state = "published";
      a.published_at = now;
    }
    Issued is;
    is.tlp = tlp;
    is.status = status;
    is.json = RenderAdvisory(a, targets, tlp, status, now, o.publisher);
    is.sha256 = Sha256Hex(is.json);
    is.sha512 = Sha512Hex(is.json);
    PG_ASSIGN_OR_RETURN(is.asc, SignDetached(o.gnupg_home, o.passphrase, is.json));
    is.at = now;
    a.issued = is;
    return Status::OK();
  });
}

notify::Mail ComposeStepMail(const Advisory& a, const std::string& step, const Organisation& org, const RunOptions& o,
                             const std::string& ack_url, bool include_workaround) {
  notify::Mail m;
  m.from = o.delivery.from;
  m.to = org.security_contacts;
  if (!org.account_manager_email.empty()) m.cc.push_back(org.account_manager_email);
  std::string tlp = a.issued ? a.issued->tlp : a.tlp;
  std::string doc_url = DocumentUrl(o.publisher, tlp, a.Year(), a.FileName());
  std::string when = a.schedule ? T(a.schedule->publish_at) : "(not scheduled)";
  std::string b = "Dear " + org.name + " security team,\n\n";
  if (step == "publish") {
    m.subject = "[patchgate] Security advisory " + a.id + " published: " + a.title;
    b += "Security advisory " + a.id + " for " + a.product + " is now public (TLP:WHITE).\n\n" + a.title + "\n\n" +
         a.summary + "\n\n";
    if (a.fix)
      b += "Fix: update to " + a.product + " " + a.fix->version + ".\n  " + TargetUrl(o.publisher, *a.fix) + "\n  sha256 " +
           a.fix->sha256 + ", " + std::to_string(a.fix->length) + " bytes (as signed in the update repository)\n\n";
    if (!a.workaround.empty()) b += "Workaround until you can update:\n" + a.workaround + "\n\n";
    b += "The advisory (CSAF 2.0, signed): " + DocumentUrl(o.publisher, "WHITE", a.Year(), a.FileName()) + "\n";
    b += "Please confirm you received this message: " + ack_url + "\n";
  } else {
    bool update = step == "workaround";
    m.subject = std::string("[patchgate] ") + (update ? "Workaround for embargoed advisory " : "Embargoed security pre-notice ") +
                a.id + " (TLP:" + tlp + "): " + a.title;
    b += "TLP:" + tlp + ": this notice is embargoed until " + when +
         ". Share it only with the people in your organisation who need it to protect your systems.\n\n";
    b += (update ? "An update to our pre-notice about " : "We are telling you ahead of the public release about ") +
         std::string("a security flaw in ") + a.product + ".\n\n" + a.title + "\n\n" + a.summary + "\n\n";
    if (!a.cve.empty()) b += "CVE: " + a.cve + "\n";
    if (!a.cvss_vector.empty()) {
      auto c = ParseCvss31(a.cvss_vector);
      if (c.ok()) b += "CVSS v3.1: " + std::to_string(c->base_score).substr(0, 3 + (c->base_score >= 10)) + " (" + c->severity + ") " + c->vector + "\n";
    }
    if (!a.severity.empty()) b += "Severity: " + a.severity + "\n";
    b += "\n";
    if (!a.workaround.empty() && include_workaround)
      b += "WORKAROUND (apply it now; the patch is not needed for it):\n" + a.workaround + "\n\n";
    else if (!a.workaround.empty())
      b += "A workaround will follow in a separate notice.\n\n";
    else
      b += "No workaround is known yet; we will send it as soon as we have it.\n\n";
    b += "Public release with the fix: " + when + ". Be ready to update then.\n\n";
    b += "The embargoed advisory (CSAF 2.0, signed) is at\n  " + doc_url +
         "\nIt is served only to your organisation's download accounts: send your download token\n"
         "(Authorization: Bearer <token>); anyone else gets 404.\n\n";
    b += "Please confirm you received this notice (opens a page with a confirm button): " + ack_url + "\n";
  }
  if (!org.account_manager_name.empty())
    b += "\nYour account manager, " + org.account_manager_name +
         (org.account_manager_phone.empty() ? "" : " (" + org.account_manager_phone + ")") +
         ", is copied and will call you if we do not hear from you.\n";
  if (b.size() > notify::kMaxBodyBytes) {  // an oversized text goes in full into an attachment
    m.attachments.push_back({a.FileName().substr(0, a.FileName().size() - 5) + ".txt", "text/plain; charset=utf-8", b});
    b = b.substr(0, notify::kMaxBodyBytes / 2) + "\n[... the full notice is attached]\n";
  }
  m.body = b;
  return m;
}

namespace {

std::string WebhookJson(const Advisory& a, const std::string& step, const Organisation& org, const RunOptions& o,
                        const std::string& ack_url) {
  std::string tlp = a.issued ? a.issued->tlp : a.tlp;
  nlohmann::json j = {{"advisory", a.id},      {"step", step},         {"organisation", org.name},
                      {"product", a.product},  {"title", a.title},     {"tlp", tlp},
                      {"document_url", DocumentUrl(o.publisher, tlp, a.Year(), a.FileName())},
                      {"publish_at", a.schedule ? T(a.schedule->publish_at) : ""},
                      {"workaround", a.workaround}, {"ack_url", ack_url}};
  if (a.fix) j["fix"] = {{"target", a.fix->path}, {"url", TargetUrl(o.publisher, *a.fix)}, {"sha256", a.fix->sha256}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<notify::DeliveryReport> DeliverStep(NotificationLedger& store, const Advisory& a, const std::string& step,
                                           const std::vector<Organisation>& orgs, notify::Transport& t,
                                           const RunOptions& o, const Clock& clock, bool include_workaround = true) {
  std::vector<notify::Outgoing> out;
  out.reserve(orgs.size());
  for (const auto& org : orgs) {
    notify::Outgoing g;
    g.org_id = org.id;
    g.org_name = org.name;
    g.contacts = org.security_contacts;
    g.account_manager_email = org.account_manager_email;
    g.webhook_url = org.webhook_url;
    const Organisation* p = &org;
    g.mail = [&a, &o, step, p, include_workaround](const std::string& ack) {
      return ComposeStepMail(a, step, *p, o, ack, include_workaround);
    };
    g.webhook_json = [&a, &o, step, p](const std::string& ack) { return WebhookJson(a, step, *p, o, ack); };
    out.push_back(std::move(g));
  }
  return notify::Deliver(store, "advisory:" + a.id + ":" + step, 0, out, t, o.delivery, clock);
}

Status MarkDone(AdvisoryRegister& store, const std::string& id, const std::vector<std::string>& steps, int64_t at) {
  return Modify(store, id, [&](Advisory& a) {
    for (const auto& s : steps) a.steps_done.emplace(s, at);
    return Status::OK();
  });
}

}  // namespace

Result<RunReport> RunDue(Store& store, notify::Transport& t, const RunOptions& o, const Clock& clock,
                         const std::string& only_id) {
  RunReport rep;
  PG_ASSIGN_OR_RETURN(std::vector<AdvisoryRow> rows, store.ListAdvisories());
  for (const auto& row : rows) {
    if (!only_id.empty() && row.id != only_id) continue;
    if (row.state == "draft") continue;
    PG_ASSIGN_OR_RETURN(Advisory a, FromRow(row));
    if (!a.schedule || (a.steps_done.count("publish") && a.steps_done.count("prenotice"))) continue;
    const Schedule& s = *a.schedule;
    int64_t now = clock.NowMicros();
    PG_ASSIGN_OR_RETURN(Audience aud, ParseAudience(s.audience));
    auto account = [&](const std::string& step, const notify::DeliveryReport& d) {
      rep.sent += d.sent;
      rep.already_sent += d.already_sent;
      rep.failed += d.failed;
      rep.busy += d.busy;
      rep.log.push_back(a.id + " " + step + ": " + std::to_string(d.organisations) + " organisations: " +
                        std::to_string(d.sent) + " sent now, " + std::to_string(d.already_sent) + " sent before, " +
                        std::to_string(d.failed) + " failed, " + std::to_string(d.busy) + " being sent by another runner");
      for (const auto& l : d.log)
        if (l.find("FAILED") != std::string::npos || l.find("call them") != std::string::npos) rep.log.push_back("  " + l);
      return d.failed == 0 && d.busy == 0;
    };
    bool published = a.steps_done.count("publish") > 0;
    // 1. Pre-notice (skipped when publication came first).
    if (!a.steps_done.count("prenotice") && now >= s.prenotify_at && !published && a.state != "published") {
      if (!a.issued) {
        PG_RETURN_IF_ERROR(Issue(store, a.id, a.tlp, "interim", o, clock));
        PG_ASSIGN_OR_RETURN(a, Load(store, a.id));
      }
      PG_ASSIGN_OR_RETURN(std::vector<Organisation> orgs, ResolveAudience(store, aud));
      // A workaround known when the pre-notice goes out travels with it: one message.
      bool with_workaround = !a.workaround.empty() && (!s.workaround_at || *s.workaround_at <= now);
      PG_ASSIGN_OR_RETURN(notify::DeliveryReport d, DeliverStep(store, a, "prenotice", orgs, t, o, clock, with_workaround));
      if (account("pre-notice", d)) {
        std::vector<std::string> done = {"prenotice"};
        if (with_workaround && s.workaround_at) done.push_back("workaround");
        PG_RETURN_IF_ERROR(MarkDone(store, a.id, done, clock.NowMicros()));
        rep.steps_done += done.size();
      }
      PG_ASSIGN_OR_RETURN(a, Load(store, a.id));
    }
    // 2. Workaround update.
    if (s.workaround_at && !a.steps_done.count("workaround") && a.steps_done.count("prenotice") && now >= *s.workaround_at &&
        !a.workaround.empty() && !published) {
      PG_ASSIGN_OR_RETURN(std::vector<Organisation> orgs, ResolveAudience(store, aud));
      PG_ASSIGN_OR_RETURN(notify::DeliveryReport d, DeliverStep(store, a, "workaround", orgs, t, o, clock));
      if (account("workaround", d)) {
        PG_RETURN_IF_ERROR(MarkDone(store, a.id, {"workaround"}, clock.NowMicros()));
        ++rep.steps_done;
      }
      PG_ASSIGN_OR_RETURN(a, Load(store, a.id));
    }
    // 3. Publication.
    if (!published && now >= s.publish_at) {
      if (!a.fix) {
        rep.log.push_back(a.id + " publish: HELD: due since " + T(s.publish_at) +
                          " but no fix is recorded (`patchgate advisory fix " + a.id + " --target PRODUCT/FILE`)");
        continue;
      }
      if (a.state != "published") {
        PG_RETURN_IF_ERROR(Issue(store, a.id, "WHITE", "final", o, clock));
        PG_ASSIGN_OR_RETURN(a, Load(store, a.id));
      }
      PG_ASSIGN_OR_RETURN(std::vector<Organisation> orgs, ResolveAudience(store, aud));
      Audience entitled{Audience::Kind::kProduct, {a.product}, "product:" + a.product};
      PG_ASSIGN_OR_RETURN(std::vector<Organisation> more, ResolveAudience(store, entitled));
      std::set<int64_t> seen;
      for (const auto& g : orgs) seen.insert(g.id);
      for (auto& g : more)
        if (seen.insert(g.id).second) orgs.push_back(std::move(g));
      PG_ASSIGN_OR_RETURN(notify::DeliveryReport d, DeliverStep(store, a, "publish", orgs, t, o, clock));
      if (account("publish", d)) {
        PG_RETURN_IF_ERROR(MarkDone(store, a.id, {"publish"}, clock.NowMicros()));
        ++rep.steps_done;
      }
    }
  }
  return rep;
}

DueRunner::DueRunner(Store* store, std::unique_ptr<notify::Transport> transport, RunOptions o, const Clock* clock,
                     int interval_seconds)
    : store_(store), transport_(std::move(transport)), o_(std::move(o)), clock_(clock), interval_(interval_seconds) {
  thread_ = std::thread([this] { Loop(); });
}

DueRunner::~DueRunner() { Stop(); }

void DueRunner::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void DueRunner::Loop() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stop_) {
    l.unlock();
    auto r = RunDue(*store_, *transport_, o_, *clock_);
    if (!r.ok())
      log::Warn("advisory due steps failed; retrying", {{"error", r.status().ToString()}});
    else
      for (const auto& line : r->log) log::Info("advisory", {{"step", line}});
    l.lock();
    cv_.wait_for(l, std::chrono::seconds(interval_), [this] { return stop_; });
  }
}

}  // namespace patchgate::advisory
