// `patchgate advisory ...` and `patchgate incident advisory`: CSAF 2.0 advisories with an
// embargo, tiered pre-notice, the workaround before the patch, and a scheduled release.
#include <cstdio>
#include <fstream>
#include <map>

#include "advisory/advisory.h"
#include "advisory/csaf.h"
#include "advisory/openpgp.h"
#include "advisory/runner.h"
#include "cli/commands.h"
#include "cli/common_flags.h"
#include "core/text.h"
#include "crypto/keys.h"
#include "incident/scope.h"

namespace patchgate::cli {

namespace {

struct AdvisoryFlags {
  std::string store, id;
  advisory::NewAdvisory n;
  std::string text, target, revision, title, summary, cve, cvss, severity;
  std::string prenotify, workaround_at, publish_at, audience;
  std::string older_than = "2h";
  bool csv = false, csaf = false, dry_run = false;
  // delivery and provider
  std::string smtp, sender, webhook_secret_file, ack_base_url = "http://127.0.0.1:8443", base_url, repo, uid;
  std::string publisher = "patchgate vendor", publisher_namespace = "https://vendor.example",
              contact = "mailto:psirt@vendor.example", tlp = "white";
  std::optional<std::string> passphrase_file;
  int parallel = 4;
};

// RFC 3339, "now", or relative to now: +90s, +30m, +2h, +7d (also -).
Result<int64_t> ParseWhen(const std::string& s, const char* flag, const Clock& clock) {
  if (s == "now") return clock.NowMicros();
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    std::string n = s.substr(1, s.size() - 2);
    char unit = s.back();
    int64_t mult = unit == 's' ? 1 : unit == 'm' ? 60 : unit == 'h' ? 3600 : unit == 'd' ? 86400 : 0;
    if (n.empty() || n.size() > 9 || n.find_first_not_of("0123456789") != std::string::npos || !mult)
      return InvalidArgument(std::string(flag) + ": relative times look like +90s, +30m, +2h or +7d");
    int64_t v = std::stoll(n) * mult * 1'000'000;
    return clock.NowMicros() + (s[0] == '+' ? v : -v);
  }
  auto t = ParseRfc3339Micros(s);
  if (!t.ok()) return InvalidArgument(std::string(flag) + ": give an RFC 3339 time (2026-12-08T18:00:00Z), now, or +2h");
  return *t;
}

Result<int64_t> ParseAge(const std::string& s) {
  if (s.size() < 2 || s.substr(0, s.size() - 1).find_first_not_of("0123456789") != std::string::npos)
    return InvalidArgument("durations look like 90s, 30m, 2h or 1d");
  int64_t v = std::stoll(s.substr(0, s.size() - 1));
  switch (s.back()) {
    case 's': return v * 1'000'000;
    case 'm': return v * 60'000'000;
    case 'h': return v * 3'600'000'000;
    case 'd': return v * 86'400'000'000;
  }
  return InvalidArgument("durations look like 90s, 30m, 2h or 1d");
}

std::string T(const std::optional<int64_t>& v) { return v ? FormatRfc3339(*v / 1'000'000) : std::string("-"); }

advisory::Publisher PublisherOf(const AdvisoryFlags& f) {
  advisory::Publisher p;
  p.name = f.publisher;
  p.namespace_url = f.publisher_namespace;
  p.contact = f.contact;
  p.base_url = f.base_url.empty() ? f.ack_base_url : f.base_url;
  while (!p.base_url.empty() && p.base_url.back() == '/') p.base_url.pop_back();
  return p;
}

void AddPublisherFlags(CLI::App* c, AdvisoryFlags* f) {
  c->add_option("--base-url", f->base_url, "The provider's public origin, e.g. https://downloads.vendor.example (default: --ack-base-url)");
  c->add_option("--publisher", f->publisher, "Publisher name in CSAF documents");
  c->add_option("--publisher-namespace", f->publisher_namespace, "Publisher namespace URL in CSAF documents");
  c->add_option("--contact", f->contact, "Publisher contact (CSAF contact_details, security.txt Contact)");
}

Result<advisory::RunOptions> RunOptionsOf(const AdvisoryFlags& f, bool need_signing) {
  advisory::RunOptions o;
  o.publisher = PublisherOf(f);
  o.delivery.from = f.sender;
  o.delivery.ack_base_url = f.ack_base_url;
  o.delivery.dry_run = f.dry_run;
  o.delivery.parallel = f.parallel;
  if (!f.webhook_secret_file.empty()) {
    std::ifstream in(f.webhook_secret_file);
    if (!std::getline(in, o.delivery.webhook_secret) || o.delivery.webhook_secret.empty())
      return InvalidArgument("cannot read a secret from " + f.webhook_secret_file);
  }
  if (need_signing) {
    if (f.repo.empty()) return InvalidArgument("give --repo DIR: its keys/openpgp/ holds the signing key");
    o.gnupg_home = advisory::GnupgHomeOf(f.repo);
    o.repo_dir = f.repo;
    PG_ASSIGN_OR_RETURN(o.passphrase, ObtainPassphrase(f.passphrase_file, "OpenPGP signing key passphrase: ", false));
  }
  return o;
}

int New(AdvisoryFlags& f) {
  return WithStore(f.store, [&](Store& s) {
    auto id = advisory::Create(s, f.n, SystemClock::Get());
    if (!id.ok()) return ReportError(id.status());
    std::printf("%s\n", id->c_str());
    return kExitOk;
  });
}

int Done(const Status& st, const std::string& what) {
  if (!st.ok()) return ReportError(st);
  std::printf("%s\n", what.c_str());
  return kExitOk;
}

// After a change to an advisory whose document was issued, issue it again.
int ReissueIfIssued(Store& s, AdvisoryFlags& f) {
  auto a = advisory::Load(s, f.id);
  if (!a.ok()) return ReportError(a.status());
  if (!a->issued) return kExitOk;
  auto o = RunOptionsOf(f, true);
  if (!o.ok()) return ReportError(o.status().WithContext("the document was issued already and must be issued again"));
  Status st = advisory::Issue(s, a->id, a->issued->tlp, a->issued->status, *o, SystemClock::Get());
  if (!st.ok()) return ReportError(st);
  std::printf("%s: document issued again (TLP:%s, %s)\n", a->id.c_str(), a->issued->tlp.c_str(), a->issued->status.c_str());
  return kExitOk;
}

int Workaround(AdvisoryFlags& f) {
  return WithStore(f.store, [&](Store& s) {
    int rc = Done(advisory::SetWorkaround(s, f.id, f.text, SystemClock::Get()), f.id + ": workaround recorded");
    return rc ? rc : ReissueIfIssued(s, f);
  });
}

int Fix(AdvisoryFlags& f) {
  return WithStore(f.store, [&](Store& s) {
    int rc = Done(advisory::SetFix(s, f.id, f.target, SystemClock::Get(), f.repo), f.id + ": fix " + f.target + " recorded");
    return rc ? rc : ReissueIfIssued(s, f);
  });
}

int UpdateCmd(AdvisoryFlags& f, CLI::App* cmd) {
  advisory::Update u;
  if (cmd->count("--title")) u.title = f.title;
  if (cmd->count("--summary")) u.summary = f.summary;
  if (cmd->count("--cve")) u.cve = f.cve;
  if (cmd->count("--cvss-vector")) u.cvss_vector = f.cvss;
  if (cmd->count("--severity")) u.severity = f.severity;
  u.revision_summary = f.revision;
  return WithStore(f.store, [&](Store& s) {
    int rc = Done(advisory::ApplyUpdate(s, f.id, u, SystemClock::Get()), f.id + ": revision added");
    return rc ? rc : ReissueIfIssued(s, f);
  });
}

// Stored text shown on a terminal: control characters, C1 codes and bidi controls appear
// escaped (the store may hold text written by another tool). Lines() keeps line breaks of
// multi-line fields and indents the lines after the first.
std::string E(const std::string& s) { return EscapeForTerminal(s); }
std::string Lines(const std::string& s) {
  std::string out;
  size_t start = 0;
  for (;;) {
    size_t nl = s.find('\n', start);
    out += EscapeForTerminal(std::string_view(s).substr(start, nl == std::string::npos ? std::string::npos : nl - start));
    if (nl == std::string::npos) return out;
    out += "\n    ";
    start = nl + 1;
  }
}

int List(AdvisoryFlags& f) {
  return WithStore(f.store, [&](Store& s) {
    auto rows = s.ListAdvisories();
    if (!rows.ok()) return ReportError(rows.status());
    std::printf("%-14s %-10s %-10s %-6s %-22s %s\n", "ID", "STATE", "PRODUCT", "TLP", "PUBLISH AT", "TITLE");
    for (const auto& r : *rows) {
      auto a = advisory::FromRow(r);
      if (!a.ok()) {
        std::printf("%-14s (unreadable: %s)\n", r.id.c_str(), a.status().ToString().c_str());
        continue;
      }
      std::printf("%-14s %-10s %-10s %-6s %-22s %s\n", a->id.c_str(), a->state.c_str(), E(a->product).c_str(), r.tlp.c_str(),
                  T(r.publish_at).c_str(), E(a->title).c_str());
    }
    return kExitOk;
  });
}

int Show(AdvisoryFlags& f) {
  return WithStore(f.store, [&](Store& s) {
    auto a = advisory::Load(s, f.id);
    if (!a.ok()) return ReportError(a.status());
    if (f.csaf) {
      if (a->issued) {
        std::printf("%s", a->issued->json.c_str());
        return kExitOk;
      }
      // Not issued yet: the draft as it stands.
      auto all = advisory::ProductTargets(s, a->product, f.repo);
      std::vector<TargetRecord> targets = all.ok() ? *all : std::vector<TargetRecord>{};
      std::printf("%s", advisory::RenderAdvisory(*a, targets, a->tlp, "draft", SystemClock::Get().NowMicros(), PublisherOf(f)).c_str());
      return kExitOk;
    }
    std::printf("%s  %s\n  product: %s   state: %s   TLP before publication: %s\n", a->id.c_str(), E(a->title).c_str(),
                E(a->product).c_str(), a->state.c_str(), a->tlp.c_str());
    if (!a->cve.empty()) std::printf("  CVE: %s\n", a->cve.c_str());
    if (!a->cvss_vector.empty()) std::printf("  CVSS: %s\n", a->cvss_vector.c_str());
    if (!a->severity.empty()) std::printf("  severity: %s\n", a->severity.c_str());
    std::printf("  summary: %s\n", Lines(a->summary).c_str());
    std::printf("  workaround: %s\n", a->workaround.empty() ? "(none)" : Lines(a->workaround).c_str());
    if (a->fix)
      std::printf("  fix: %s (version %s, sha256 %s)\n", E(a->fix->path).c_str(), E(a->fix->version).c_str(), a->fix->sha256.c_str());
    else
      std::printf("  fix: (none yet)\n");
    if (a->schedule)
      std::printf("  schedule: pre-notice %s to %s, workaround %s, publish %s\n", T(a->schedule->prenotify_at).c_str(),
                  E(a->schedule->audience).c_str(), T(a->schedule->workaround_at).c_str(), T(a->schedule->publish_at).c_str());
    for (const auto& [step, at] : a->steps_done) std::printf("  step %s done %s\n", step.c_str(), T(at).c_str());
    if (a->issued)
      std::printf("  issued: TLP:%s %s at %s, sha256 %s\n", a->issued->tlp.c_str(), a->issued->status.c_str(),
                  T(a->issued->at).c_str(), a->issued->sha256.c_str());
    std::printf("  revisions:\n");
    for (const auto& r : a->revisions) std::printf("    %s  %s  %s\n", r.number.c_str(), T(r.date).c_str(), E(r.summary).c_str());
    return kExitOk;
  });
}

int ScheduleCmd(AdvisoryFlags& f) {
  const Clock& clock = SystemClock::Get();
  advisory::Schedule sc;
  auto pre = ParseWhen(f.prenotify, "--prenotify", clock);
  if (!pre.ok()) return ReportError(pre.status());
  auto pub = ParseWhen(f.publish_at, "--publish-at", clock);
  if (!pub.ok()) return ReportError(pub.status());
  sc.prenotify_at = *pre;
  sc.publish_at = *pub;
  if (!f.workaround_at.empty()) {
    auto w = ParseWhen(f.workaround_at, "--workaround-at", clock);
    if (!w.ok()) return ReportError(w.status());
    sc.workaround_at = *w;
  }
  sc.audience = f.audience;
  return WithStore(f.store, [&](Store& s) {
    Status st = advisory::SetSchedule(s, f.id, sc, clock);
    if (!st.ok()) return ReportError(st);
    std::printf("%s: pre-notice %s to %s%s, public release %s\n", f.id.c_str(), T(sc.prenotify_at).c_str(),
                f.audience.c_str(), sc.workaround_at ? (", workaround " + T(sc.workaround_at)).c_str() : "",
                T(sc.publish_at).c_str());
    std::printf("the steps run in `patchgate serve` (with --smtp) or `patchgate advisory run-due`\n");
    return kExitOk;
  });
}

int StatusCmd(AdvisoryFlags& f) {
  return WithStore(f.store, [&](Store& s) {
    auto a = advisory::Load(s, f.id);
    if (!a.ok()) return ReportError(a.status());
    auto ns = s.ListSubjectNotifications("advisory:" + a->id + ":");
    if (!ns.ok()) return ReportError(ns.status());
    std::printf("%s (%s)\n", a->id.c_str(), a->state.c_str());
    for (const char* step : {"prenotice", "workaround", "publish"}) {
      auto it = a->steps_done.find(step);
      std::printf("  %-10s %s\n", step, it == a->steps_done.end() ? "not done" : ("done " + T(it->second)).c_str());
    }
    size_t sent = 0, failed = 0, acked = 0;
    std::printf("%-24s %-10s %-8s %-7s %-8s %-22s %-22s %s\n", "ORGANISATION", "STEP", "CHANNEL", "STATE", "ATTEMPTS", "SENT",
                "ACKNOWLEDGED", "LAST ERROR");
    for (const auto& n : *ns) {
      std::string step = n.subject.substr(n.subject.rfind(':') + 1);
      sent += n.state == "sent";
      failed += n.state == "failed";
      acked += n.acked_at.has_value();
      std::printf("%-24s %-10s %-8s %-7s %-8d %-22s %-22s %s\n", EscapeForTerminal(n.org_name).c_str(), step.c_str(),
                  n.channel.c_str(), n.state.c_str(), n.attempts, T(n.sent_at).c_str(), T(n.acked_at).c_str(),
                  EscapeForTerminal(n.last_error).c_str());
    }
    std::printf("%zu notifications: %zu sent, %zu failed, %zu acknowledged\n", ns->size(), sent, failed, acked);
    return kExitOk;
  });
}

int CallList(AdvisoryFlags& f) {
  auto older = ParseAge(f.older_than);
  if (!older.ok()) return ReportError(older.status());
  return WithStore(f.store, [&](Store& s) {
    auto a = advisory::Load(s, f.id);
    if (!a.ok()) return ReportError(a.status());
    int64_t cutoff = SystemClock::Get().NowMicros() - *older;
    auto calls = advisory::CallList(s, *a, cutoff);
    if (!calls.ok()) return ReportError(calls.status());
    if (f.csv)
      std::printf("organisation,tier,account_manager,account_manager_email,phone,contacts,notified_at\n");
    else
      std::printf("Audience organisations to call (no acknowledgement; notified before %s or not at all):\n",
                  FormatRfc3339(cutoff / 1'000'000).c_str());
    size_t count = 0;
    for (const auto& [o, first_sent] : *calls) {
      ++count;
      std::string contacts;
      for (const auto& c : o.security_contacts) contacts += (contacts.empty() ? "" : "; ") + c;
      std::string sent = first_sent ? FormatRfc3339(*first_sent / 1'000'000) : "never";
      if (f.csv)
        std::printf("%s,%s,%s,%s,%s,%s,%s\n", notify::CsvCell(o.name).c_str(), notify::CsvCell(o.tier).c_str(),
                    notify::CsvCell(o.account_manager_name).c_str(), notify::CsvCell(o.account_manager_email).c_str(),
                    notify::CsvCell(o.account_manager_phone).c_str(), notify::CsvCell(contacts).c_str(), sent.c_str());
      else
        std::printf("  %-8s %-24s %-20s %-16s %s  notified %s\n", EscapeForTerminal(o.tier).c_str(),
                    EscapeForTerminal(o.name).c_str(), EscapeForTerminal(o.account_manager_name).c_str(),
                    EscapeForTerminal(o.account_manager_phone).c_str(), EscapeForTerminal(contacts).c_str(), sent.c_str());
    }
    if (!f.csv) std::printf("%zu organisation(s) to call\n", count);
    return kExitOk;
  });
}

int RunDueCmd(AdvisoryFlags& f) {
  if (f.smtp.empty() && !f.dry_run) return ReportError(InvalidArgument("give --smtp URL (smtp://host:port or smtps://...)"));
  auto o = RunOptionsOf(f, !f.dry_run);
  if (!o.ok()) return ReportError(o.status());
  return WithStore(f.store, [&](Store& s) {
    auto transport = notify::NewCurlTransport(f.smtp);
    auto r = advisory::RunDue(s, *transport, *o, SystemClock::Get(), f.id);
    if (!r.ok()) return ReportError(r.status());
    for (const auto& l : r->log) std::printf("%s\n", EscapeForTerminal(l).c_str());
    std::printf("%zu step(s) completed: %zu sent now, %zu sent before, %zu failed, %zu being sent elsewhere\n",
                r->steps_done, r->sent, r->already_sent, r->failed, r->busy);
    return r->failed ? kExitUnavailable : kExitOk;
  });
}

int SigningKey(AdvisoryFlags& f) {
  if (f.repo.empty()) return ReportError(InvalidArgument("give --repo DIR"));
  auto pass = ObtainPassphrase(f.passphrase_file, "New OpenPGP signing key passphrase: ", true);
  if (!pass.ok()) return ReportError(pass.status());
  auto existing = advisory::LoadSigningKey(advisory::GnupgHomeOf(f.repo));
  if (existing.ok()) {
    std::printf("%s\n", existing->fingerprint.c_str());
    return ReportError(AlreadyExists("the repository has an OpenPGP signing key already (fingerprint above)"));
  }
  auto k = advisory::CreateSigningKey(advisory::GnupgHomeOf(f.repo), f.uid, *pass);
  if (!k.ok()) return ReportError(k.status());
  std::printf("%s\n", k->fingerprint.c_str());
  return kExitOk;
}

int IncidentAdvisory(AdvisoryFlags& f) {
  auto tlp = advisory::ParseTlp(f.tlp);
  if (!tlp.ok()) return ReportError(tlp.status());
  if (f.id.empty() || f.id.size() > 18 || f.id.find_first_not_of("0123456789") != std::string::npos)
    return ReportError(InvalidArgument("'" + f.id + "' is not an incident id (see `patchgate incident list`)"));
  return WithStore(f.store, [&](Store& s) {
    auto inc = s.GetIncident(std::stoll(f.id));
    if (!inc.ok()) return ReportError(inc.status());
    auto q = incident::QueryForIncident(s, inc->id);
    if (!q.ok()) return ReportError(q.status());
    auto scope = incident::ComputeScope(s, s, *q);
    if (!scope.ok()) return ReportError(scope.status());
    std::printf("%s", advisory::RenderIncidentResponse(*inc, *scope, *tlp, SystemClock::Get().NowMicros(), PublisherOf(f)).c_str());
    return kExitOk;
  });
}

}  // namespace

void RegisterAdvisoryCommands(CLI::App& app, Context& ctx) {
  auto f = std::make_shared<AdvisoryFlags>();
  auto* adv = app.add_subcommand("advisory", "CSAF 2.0 advisories: embargo, pre-notice, workaround, scheduled release");
  adv->require_subcommand(1);
  auto store = [&](CLI::App* c) { AddStoreFlag(c, &f->store); };
  auto id = [&](CLI::App* c) { c->add_option("ID", f->id, "Advisory id, e.g. PG-2026-0001")->required(); };
  auto signing = [&](CLI::App* c) {
    c->add_option("--repo", f->repo, "Repository directory (its keys/openpgp/ holds the signing key)");
    c->add_option("--passphrase-file", f->passphrase_file, "File whose first line is the signing key passphrase");
  };

  auto* n = adv->add_subcommand("new", "Create a draft advisory; prints its id");
  store(n);
  n->add_option("--product", f->n.product, "Affected product")->required();
  n->add_option("--title", f->n.title, "Title")->required();
  n->add_option("--summary", f->n.summary, "What is wrong and who is affected")->required();
  n->add_option("--cve", f->n.cve, "CVE-YYYY-NNNN");
  n->add_option("--cvss-vector", f->n.cvss_vector, "CVSS:3.1/AV:.../A:. (base metrics)");
  n->add_option("--severity", f->n.severity, "critical|high|medium|low");
  n->add_option("--tlp", f->n.tlp, "TLP label before publication: red|amber|green|white (clear = white; default amber)");
  n->final_callback([f, &ctx] { ctx.exit_code = New(*f); });

  auto* w = adv->add_subcommand("workaround", "Record the workaround (goes out before the patch)");
  store(w);
  id(w);
  signing(w);
  w->add_option("--text", f->text, "The workaround")->required();
  w->final_callback([f, &ctx] { ctx.exit_code = Workaround(*f); });

  auto* x = adv->add_subcommand("fix", "Reference the fix: a published, scanned target");
  store(x);
  id(x);
  signing(x);
  AddPublisherFlags(x, f.get());
  x->add_option("--target", f->target, "PRODUCT/FILE (TUF target path)")->required();
  x->final_callback([f, &ctx] { ctx.exit_code = Fix(*f); });

  auto* u = adv->add_subcommand("update", "Change the advisory; adds a revision (and issues the document again)");
  store(u);
  id(u);
  signing(u);
  AddPublisherFlags(u, f.get());
  u->add_option("--title", f->title, "New title");
  u->add_option("--summary", f->summary, "New summary");
  u->add_option("--cve", f->cve, "CVE-YYYY-NNNN");
  u->add_option("--cvss-vector", f->cvss, "CVSS v3.1 base vector");
  u->add_option("--severity", f->severity, "critical|high|medium|low");
  u->add_option("--revision", f->revision, "What changed (revision history summary)")->required();
  u->final_callback([f, &ctx, u] { ctx.exit_code = UpdateCmd(*f, u); });

  auto* l = adv->add_subcommand("list", "List advisories");
  store(l);
  l->final_callback([f, &ctx] { ctx.exit_code = List(*f); });

  auto* sh = adv->add_subcommand("show", "Show an advisory (--csaf: its CSAF 2.0 document)");
  store(sh);
  id(sh);
  AddPublisherFlags(sh, f.get());
  sh->add_option("--repo", f->repo, "Repository directory (the product tree from its signed targets)");
  sh->add_flag("--csaf", f->csaf, "Print the CSAF document (the issued one, else the draft)");
  sh->final_callback([f, &ctx] { ctx.exit_code = Show(*f); });

  auto* sc = adv->add_subcommand("schedule", "Schedule pre-notice, workaround and public release");
  store(sc);
  id(sc);
  sc->add_option("--prenotify", f->prenotify, "When to pre-notify: RFC 3339, now, or +2h")->required();
  sc->add_option("--audience", f->audience, "tier:premier[,gold] | product:P | downloaded:P")->required();
  sc->add_option("--workaround-at", f->workaround_at, "When the workaround goes out (RFC 3339, now, +2h)");
  sc->add_option("--publish-at", f->publish_at, "Public release (RFC 3339, now, +7d)")->required();
  sc->final_callback([f, &ctx] { ctx.exit_code = ScheduleCmd(*f); });

  auto* st = adv->add_subcommand("status", "Who was told what and when, acknowledgements, failures");
  store(st);
  id(st);
  st->final_callback([f, &ctx] { ctx.exit_code = StatusCmd(*f); });

  auto* cl = adv->add_subcommand("call-list", "Audience organisations without an acknowledgement, by tier");
  store(cl);
  id(cl);
  cl->add_option("--older-than", f->older_than, "Only those notified longer ago than this (default 2h)");
  cl->add_flag("--csv", f->csv, "CSV output");
  cl->final_callback([f, &ctx] { ctx.exit_code = CallList(*f); });

  auto* rd = adv->add_subcommand("run-due", "Run the due steps once (pre-notice, workaround, publish)");
  store(rd);
  signing(rd);
  AddPublisherFlags(rd, f.get());
  rd->add_option("--smtp", f->smtp, "smtp://host:port (STARTTLS when offered) or smtps://host:port");
  rd->add_option("--from", f->sender, "Sender address, e.g. \"PSIRT <psirt@vendor.example>\"");
  rd->add_option("--ack-base-url", f->ack_base_url, "Base URL of `patchgate serve` for acknowledgement links");
  rd->add_option("--webhook-secret-file", f->webhook_secret_file, "HMAC key for webhook signatures");
  rd->add_option("--id", f->id, "Only this advisory");
  rd->add_option("--parallel", f->parallel, "Concurrent SMTP connections (default 4)");
  rd->add_flag("--dry-run", f->dry_run, "Show what would be sent");
  rd->final_callback([f, &ctx] { ctx.exit_code = RunDueCmd(*f); });

  auto* sk = adv->add_subcommand("signing-key", "Create the provider's OpenPGP signing key in DIR/keys/openpgp/");
  signing(sk);
  sk->add_option("--uid", f->uid, "User id, e.g. \"Vendor PSIRT <psirt@vendor.example>\"")->required();
  sk->final_callback([f, &ctx] { ctx.exit_code = SigningKey(*f); });

  // `patchgate incident advisory ID`: the incident as a CSAF security incident response.
  CLI::App* inc = nullptr;
  try {
    inc = app.get_subcommand("incident");
  } catch (const CLI::Error&) {
  }
  if (inc) {
    auto* ia = inc->add_subcommand("advisory", "The incident as a CSAF 2.0 csaf_security_incident_response document");
    store(ia);
    ia->add_option("ID", f->id, "Incident id")->required();
    ia->add_option("--tlp", f->tlp, "TLP label (default white)");
    AddPublisherFlags(ia, f.get());
    ia->final_callback([f, &ctx] { ctx.exit_code = IncidentAdvisory(*f); });
  }
}

}  // namespace patchgate::cli
