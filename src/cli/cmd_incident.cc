// `patchgate incident | import-log | notify`: incident response.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common_flags.h"
#include "core/clock.h"
#include "core/csv.h"
#include "core/heap_huge_pages.h"
#include "core/json_output.h"
#include "core/text.h"
#include "incident/import.h"
#include "incident/scope.h"
#include "store/node_registry.h"
#include "notify/notify.h"

namespace patchgate::cli {

namespace {

struct IncidentFlags {
  std::string store;
  std::string node, from, to, cause, id_text, format = "nginx-combined", repo, html;
  std::vector<std::string> targets, files;
  bool json = false, csv = false, dry_run = false;
  std::string smtp, sender, webhook_secret_file, ack_base_url = "http://127.0.0.1:8443", older_than = "4h";
};

Result<int64_t> ParseId(const std::string& s) {
  if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string::npos)
    return InvalidArgument("'" + s + "' is not an incident id (see `patchgate incident list`)");
  return std::stoll(s);
}

Result<int64_t> ParseDuration(const std::string& s) {
  if (s.size() < 2) return InvalidArgument("durations look like 90s, 30m, 4h or 2d");
  std::string n = s.substr(0, s.size() - 1);
  if (n.find_first_not_of("0123456789") != std::string::npos) return InvalidArgument("durations look like 90s, 30m, 4h or 2d");
  int64_t v = std::stoll(n);
  switch (s.back()) {
    case 's': return v * 1'000'000;
    case 'm': return v * 60'000'000;
    case 'h': return v * 3'600'000'000;
    case 'd': return v * 86'400'000'000;
  }
  return InvalidArgument("durations look like 90s, 30m, 4h or 2d");
}

Result<std::pair<int64_t, int64_t>> Window(const IncidentFlags& f) {
  if (f.from.empty() || f.to.empty()) return InvalidArgument("give the window: --from T1 --to T2 (RFC 3339)");
  PG_ASSIGN_OR_RETURN(int64_t a, ParseRfc3339Micros(f.from));
  PG_ASSIGN_OR_RETURN(int64_t b, ParseRfc3339Micros(f.to));
  if (b < a) return InvalidArgument("--to is before --from");
  return std::make_pair(a, b);
}

int Open(IncidentFlags& f) {
  auto w = Window(f);
  if (!w.ok()) return ReportError(w.status());
  return WithStore(f.store, [&](Store& s) {
    Incident inc{0, f.node, w->first, w->second, f.cause, SystemClock::Get().NowMicros(), f.targets};
    auto id = s.CreateIncident(inc);
    if (!id.ok()) return ReportError(id.status());
    std::printf("%lld\n", static_cast<long long>(*id));
    return kExitOk;
  });
}

int List(IncidentFlags& f) {
  return WithStore(f.store, [&](Store& s) {
    auto all = s.ListIncidents();
    if (!all.ok()) return ReportError(all.status());
    if (f.json) {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& i : *all)
        arr.push_back({{"id", i.id}, {"node", i.node}, {"window_start", FormatRfc3339Micros(i.window_start)},
                       {"window_end", FormatRfc3339Micros(i.window_end)}, {"window_start_us", i.window_start},
                       {"window_end_us", i.window_end}, {"cause", i.cause},
                       {"detected_at", FormatRfc3339Micros(i.detected_at)}, {"detected_at_us", i.detected_at},
                       {"files", i.targets}});
      std::printf("%s\n", JsonText(arr).c_str());
      return kExitOk;
    }
    std::printf("%-5s %-12s %-22s %-22s %s\n", "ID", "NODE", "FROM", "TO", "CAUSE");
    for (const auto& i : *all)
      std::printf("%-5lld %-12s %-22s %-22s %s\n", static_cast<long long>(i.id), EscapeForTerminal(i.node).c_str(),
                  FormatRfc3339(i.window_start / 1'000'000).c_str(), FormatRfc3339(i.window_end / 1'000'000).c_str(),
                  EscapeForTerminal(i.cause).c_str());
    return kExitOk;
  });
}

int Show(IncidentFlags& f) {
  auto id = ParseId(f.id_text);
  if (!id.ok()) return ReportError(id.status());
  return WithStore(f.store, [&](Store& s) {
    auto i = s.GetIncident(*id);
    if (!i.ok()) return ReportError(i.status());
    std::printf("incident %lld\n  node:     %s\n  window:   %s to %s\n  cause:    %s\n  detected: %s\n",
                static_cast<long long>(i->id), EscapeForTerminal(i->node).c_str(),
                FormatRfc3339(i->window_start / 1'000'000).c_str(), FormatRfc3339(i->window_end / 1'000'000).c_str(),
                EscapeForTerminal(i->cause).c_str(),
                FormatRfc3339(i->detected_at / 1'000'000).c_str());
    std::printf("  files:    %s\n", i->targets.empty() ? "(every file served by the node)" : "");
    for (const auto& t : i->targets) std::printf("            %s\n", EscapeForTerminal(t).c_str());
    return kExitOk;
  });
}

// Writes a whole report to standard output. A report of a busy window is megabytes; into a
// pipe (`| less`, a script, the bench) of the default 64 KiB the writer stops every 64 KiB
// until the reader has drained it, and each stop is two context switches: with 2.7 MB that
// was ~40 stops and ~75 ms of a 140 ms command on the project's loaded 2-core VM. The pipe
// is widened first (F_SETPIPE_SZ, up to the 1 MiB an unprivileged process may ask for by
// default; where refused, it stays as it was).
Status WriteReport(const std::string& text) {
  struct stat st {};
  if (text.size() > (64u << 10) && ::fstat(STDOUT_FILENO, &st) == 0 && S_ISFIFO(st.st_mode)) {
    const int want = static_cast<int>(std::min<size_t>(text.size(), size_t{1} << 20));
    if (::fcntl(STDOUT_FILENO, F_GETPIPE_SZ) < want) (void)::fcntl(STDOUT_FILENO, F_SETPIPE_SZ, want);
  }
  if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0)
    return IOError("cannot write the report to standard output");
  return Status::OK();
}

int ScopeCmd(IncidentFlags& f) {
  if (f.json + f.csv + !f.html.empty() > 1) return ReportError(InvalidArgument("choose one of --json, --csv, --html"));
  // One result, then the process ends: its rows, groups and text go on huge pages (a busy
  // node-day touched ~20 MB in 4 KiB page faults; core/heap_huge_pages.h), set up by main()
  // before the first allocation.
  return WithStore(f.store, [&](Store& s) {
    incident::ScopeQuery q;
    if (!f.id_text.empty()) {
      auto id = ParseId(f.id_text);
      if (!id.ok()) return ReportError(id.status());
      auto qq = incident::QueryForIncident(s, *id);
      if (!qq.ok()) return ReportError(qq.status());
      q = *qq;
    } else {
      auto w = Window(f);
      if (!w.ok()) return ReportError(w.status());
      q.node = f.node;
      q.from = w->first;
      q.to = w->second;
      q.targets = f.targets;
    }
    auto scope = incident::ComputeScope(s, s, q);
    if (!scope.ok()) return ReportError(scope.status());
    // What the node refused instead of serving (the chain's registry, same database).
    auto registry = NodeRegistry::OpenBeside(s, f.store);
    if (!registry.ok()) return ReportError(registry.status());
    if (Status st = incident::AttachRefusals(s, **registry, &*scope); !st.ok()) return ReportError(st);
    if (!f.html.empty()) {
      std::ofstream out(f.html, std::ios::trunc);
      out << incident::RenderHtml(*scope);
      if (!out) return ReportError(IOError("cannot write " + f.html));
      std::printf("%s\nwrote %s\n", scope->Totals().c_str(), f.html.c_str());
      return kExitOk;
    }
    Status written = WriteReport(f.json  ? incident::RenderJson(*scope)
                                 : f.csv ? incident::RenderCsv(*scope)
                                         : incident::RenderTable(*scope));
    return written.ok() ? kExitOk : ReportError(written);
  });
}

int ImportLog(IncidentFlags& f) {
  if (f.format != "nginx-combined") return ReportError(InvalidArgument("--format: only nginx-combined is supported"));
  return WithStore(f.store, [&](Store& s) {
    int rc = kExitOk;
    for (const auto& file : f.files) {
      auto r = incident::ImportNginxLog(s, file, {f.node, f.repo});
      if (!r.ok()) {
        rc = ReportError(r.status().WithContext(file));
        continue;
      }
      std::printf("%s: %zu lines, %zu downloads imported, %zu already imported, %zu not downloads, %zu unparseable; "
                  "flagged: %zu unknown users, %zu unknown paths\n",
                  EscapeForTerminal(file).c_str(), r->lines, r->imported, r->duplicates, r->skipped, r->unparseable, r->unknown_users,
                  r->unknown_targets);
      for (const auto& [line, why] : r->bad_lines) std::printf("  line %zu: %s\n", line, EscapeForTerminal(why).c_str());
      if (r->unparseable > r->bad_lines.size())
        std::printf("  ... and %zu more unparseable lines\n", r->unparseable - r->bad_lines.size());
    }
    return rc;
  });
}

int NotifyCmd(IncidentFlags& f) {
  auto id = ParseId(f.id_text);
  if (!id.ok()) return ReportError(id.status());
  if (f.smtp.empty() && !f.dry_run) return ReportError(InvalidArgument("give --smtp URL (smtp://host:port or smtps://...)"));
  notify::NotifyOptions o;
  o.from = f.sender;
  o.ack_base_url = f.ack_base_url;
  o.dry_run = f.dry_run;
  if (!f.webhook_secret_file.empty()) {
    std::ifstream in(f.webhook_secret_file);
    if (!std::getline(in, o.webhook_secret) || o.webhook_secret.empty())
      return ReportError(InvalidArgument("cannot read a secret from " + f.webhook_secret_file));
  }
  return WithStore(f.store, [&](Store& s) {
    auto transport = notify::NewCurlTransport(f.smtp);
    auto r = notify::NotifyIncident(s, *id, *transport, o, SystemClock::Get());
    if (!r.ok()) return ReportError(r.status());
    for (const auto& l : r->log) std::printf("%s\n", EscapeForTerminal(l).c_str());
    std::printf("%zu organisations: %zu sent now, %zu sent before, %zu failed\n", r->organisations, r->sent,
                r->already_sent, r->failed);
    return r->failed ? kExitUnavailable : kExitOk;
  });
}

int StatusCmd(IncidentFlags& f) {
  auto id = ParseId(f.id_text);
  if (!id.ok()) return ReportError(id.status());
  return WithStore(f.store, [&](Store& s) {
    auto ns = s.ListNotifications(*id);
    if (!ns.ok()) return ReportError(ns.status());
    auto t = [](const std::optional<int64_t>& v) { return v ? FormatRfc3339(*v / 1'000'000) : std::string("-"); };
    std::printf("%-24s %-8s %-7s %-8s %-22s %-22s %s\n", "ORGANISATION", "CHANNEL", "STATE", "ATTEMPTS", "SENT",
                "ACKNOWLEDGED", "LAST ERROR");
    for (const auto& n : *ns)
      std::printf("%-24s %-8s %-7s %-8d %-22s %-22s %s\n", EscapeForTerminal(n.org_name).c_str(), n.channel.c_str(),
                  n.state.c_str(), n.attempts, t(n.sent_at).c_str(), t(n.acked_at).c_str(),
                  EscapeForTerminal(n.last_error).c_str());
    return kExitOk;
  });
}

int CallList(IncidentFlags& f) {
  auto id = ParseId(f.id_text);
  if (!id.ok()) return ReportError(id.status());
  auto older = ParseDuration(f.older_than);
  if (!older.ok()) return ReportError(older.status());
  return WithStore(f.store, [&](Store& s) {
    auto q = incident::QueryForIncident(s, *id);
    if (!q.ok()) return ReportError(q.status());
    auto scope = incident::ComputeScope(s, s, *q);
    if (!scope.ok()) return ReportError(scope.status());
    auto ns = s.ListNotifications(*id);
    if (!ns.ok()) return ReportError(ns.status());
    int64_t cutoff = SystemClock::Get().NowMicros() - *older;
    if (!f.csv) std::printf("Organisations to call (no acknowledgement, notified before %s or not at all):\n",
                            FormatRfc3339(cutoff / 1'000'000).c_str());
    std::string csv;
    CsvWriter w(&csv);
    if (f.csv)
      w.Row({"organisation", "account_manager", "account_manager_email", "phone", "contacts", "affected_downloads",
             "notified_at"});
    for (const auto& g : scope->orgs) {
      bool acked = false;
      std::optional<int64_t> first_sent;
      for (const auto& n : *ns) {
        if (n.org_name != g.name) continue;
        acked |= n.acked_at.has_value();
        if (n.sent_at && (!first_sent || *n.sent_at < *first_sent)) first_sent = n.sent_at;
      }
      if (acked || (first_sent && *first_sent > cutoff) || g.name == "(unknown user)") continue;
      std::string contacts;
      for (const auto& c : g.contacts) contacts += (contacts.empty() ? "" : "; ") + c;
      std::string sent = first_sent ? FormatRfc3339(*first_sent / 1'000'000) : "never";
      if (f.csv)
        w.Text(g.name).Text(g.account_manager).Text(g.account_manager_email).Text(g.phone).Text(contacts)
            .Number(uint64_t{g.downloads.size()}).Text(sent).EndRow();
      else
        std::printf("  %-24s %-20s %-16s %3zu downloads  notified %s\n", EscapeForTerminal(g.name).c_str(),
                    EscapeForTerminal(g.account_manager).c_str(), EscapeForTerminal(g.phone).c_str(),
                    g.downloads.size(), sent.c_str());
    }
    std::fputs(csv.c_str(), stdout);
    return kExitOk;
  });
}

}  // namespace

void RegisterIncidentCommands(CLI::App& app, Context& ctx) {
  auto f = std::make_shared<IncidentFlags>();
  auto* inc = app.add_subcommand("incident", "Open incidents and compute their scope");
  inc->require_subcommand(1);
  auto* open = inc->add_subcommand("open", "Record an incident; prints its id");
  open->add_option("--node", f->node, "The node that served compromised files")->required();
  open->add_option("--from", f->from, "Window start (RFC 3339)")->required();
  open->add_option("--to", f->to, "Window end (RFC 3339)")->required();
  open->add_option("--cause", f->cause, "What happened")->required();
  open->add_option("--target", f->targets, "A file involved (repeatable; default: every file)");
  AddStoreFlag(open, &f->store);
  open->final_callback([f, &ctx] { ctx.exit_code = Open(*f); });
  auto* list = inc->add_subcommand("list", "List incidents");
  list->add_flag("--json", f->json, "JSON output (times as RFC 3339 and as microseconds)");
  AddStoreFlag(list, &f->store);
  list->final_callback([f, &ctx] { ctx.exit_code = List(*f); });
  auto* show = inc->add_subcommand("show", "Show an incident");
  show->add_option("ID", f->id_text, "Incident id")->required();
  AddStoreFlag(show, &f->store);
  show->final_callback([f, &ctx] { ctx.exit_code = Show(*f); });
  auto* scope = inc->add_subcommand("scope", "Who received what, when and from where");
  scope->add_option("ID", f->id_text, "Incident id (or give --node/--from/--to)");
  scope->add_option("--node", f->node, "Node");
  scope->add_option("--from", f->from, "Window start (RFC 3339)");
  scope->add_option("--to", f->to, "Window end (RFC 3339)");
  scope->add_option("--target", f->targets, "Only these files (repeatable)");
  scope->add_flag("--json", f->json, "JSON output");
  scope->add_flag("--csv", f->csv, "CSV output");
  scope->add_option("--html", f->html, "Write a self-contained HTML report to FILE");
  AddStoreFlag(scope, &f->store);
  scope->final_callback([f, &ctx] { ctx.exit_code = ScopeCmd(*f); });

  auto* imp = app.add_subcommand("import-log", "Import access logs of nodes patchgate does not run");
  imp->add_option("--node", f->node, "The node the logs come from")->required();
  imp->add_option("--format", f->format, "Log format: nginx-combined")->required();
  imp->add_option("--repo", f->repo, "Repository: flag requests for paths that were never published");
  imp->add_option("FILE", f->files, "Log files")->required();
  AddStoreFlag(imp, &f->store);
  imp->final_callback([f, &ctx] { ctx.exit_code = ImportLog(*f); });

  auto* nt = app.add_subcommand("notify", "Notify affected customers and track acknowledgements");
  nt->require_subcommand(1);
  auto* ni = nt->add_subcommand("incident", "One message per affected organisation (resumable, idempotent)");
  ni->add_option("ID", f->id_text, "Incident id")->required();
  ni->add_option("--smtp", f->smtp, "smtp://[user:pass@]host:port[?starttls=required] or smtps://...");
  ni->add_option("--from", f->sender, "Sender address, e.g. \"Vendor PSIRT <psirt@vendor.example>\"");
  ni->add_flag("--dry-run", f->dry_run, "Show what would be sent; send and record nothing");
  ni->add_option("--webhook-secret-file", f->webhook_secret_file, "HMAC-SHA256 key for webhook signatures");
  ni->add_option("--ack-base-url", f->ack_base_url, "Public base URL of patchgate serve for /ack/<token> links");
  AddStoreFlag(ni, &f->store);
  ni->final_callback([f, &ctx] { ctx.exit_code = NotifyCmd(*f); });
  auto* ns = nt->add_subcommand("status", "Sent / failed / acknowledged per organisation");
  ns->add_option("ID", f->id_text, "Incident id")->required();
  AddStoreFlag(ns, &f->store);
  ns->final_callback([f, &ctx] { ctx.exit_code = StatusCmd(*f); });
  auto* cl = nt->add_subcommand("call-list", "Organisations that have not acknowledged in time");
  cl->add_option("ID", f->id_text, "Incident id")->required();
  cl->add_option("--older-than", f->older_than, "Notified longer ago than this (e.g. 4h)");
  cl->add_flag("--csv", f->csv, "CSV output");
  AddStoreFlag(cl, &f->store);
  cl->final_callback([f, &ctx] { ctx.exit_code = CallList(*f); });
}

}  // namespace patchgate::cli
