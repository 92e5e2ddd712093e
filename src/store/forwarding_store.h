// A Store that forwards every call to another one, so a test overrides just the call it
// wants to break (an outage, a slow commit). Not owning; thread-safety is the target's.
#pragma once

#include "store/store.h"

namespace patchgate {

class ForwardingStore : public Store {
 public:
  explicit ForwardingStore(Store* target) : target_(target) {}
  std::string engine() const override { return target_->engine(); }
  Result<int64_t> AddOrganisation(const Organisation& org) override { return target_->AddOrganisation(org); }
  Result<Organisation> GetOrganisation(const std::string& name) override { return target_->GetOrganisation(name); }
  Result<std::vector<Organisation>> ListOrganisations() override { return target_->ListOrganisations(); }
  Result<int64_t> AddUser(const std::string& org, const std::string& username, const std::string& token_hash) override { return target_->AddUser(org, username, token_hash); }
  Status RevokeUser(const std::string& username) override { return target_->RevokeUser(username); }
  Result<User> AuthenticateTokenHash(const std::string& token_hash) override { return target_->AuthenticateTokenHash(token_hash); }
  Result<User> GetUser(const std::string& username) override { return target_->GetUser(username); }
  Status Grant(const std::string& org, const std::string& product) override { return target_->Grant(org, product); }
  Result<bool> IsEntitled(int64_t org_id, const std::string& product) override { return target_->IsEntitled(org_id, product); }
  Result<std::vector<std::string>> EntitledOrganisations(const std::string& product) override { return target_->EntitledOrganisations(product); }
  Status UpsertTarget(const TargetRecord& t) override { return target_->UpsertTarget(t); }
  Result<TargetRecord> GetTarget(const std::string& path) override { return target_->GetTarget(path); }
  Result<std::vector<std::string>> ListTargetPaths() override { return target_->ListTargetPaths(); }
  Status MarkTargetInfected(const std::string& path, const std::string& detail) override { return target_->MarkTargetInfected(path, detail); }
  Status UpsertNode(const NodeRecord& n) override { return target_->UpsertNode(n); }
  Result<std::vector<NodeRecord>> ListNodes() override { return target_->ListNodes(); }
  Status QuarantineTargetOnNode(const std::string& node, const std::string& path, const std::string& expected_sha256, const std::string& actual_sha256, int64_t at) override { return target_->QuarantineTargetOnNode(node, path, expected_sha256, actual_sha256, at); }
  Result<std::vector<int64_t>> BeginDownloads(const std::vector<DownloadStart>& starts) override { return target_->BeginDownloads(starts); }
  Status FinishDownloads(const std::vector<DownloadFinish>& finishes) override { return target_->FinishDownloads(finishes); }
  Result<size_t> FoldDownloads(size_t max_rows, int64_t unfinished_before) override {
    return target_->FoldDownloads(max_rows, unfinished_before);
  }
  Result<std::vector<Download>> QueryDownloads(const DownloadQuery& q) override { return target_->QueryDownloads(q); }
  Status VisitScopeDownloads(const DownloadQuery& q, const std::function<void(const ScopeRowView&)>& row,
                             const std::function<void(int64_t, std::string_view)>& detail) override {
    return target_->VisitScopeDownloads(q, row, detail);
  }
  Result<std::string> ExplainQueryDownloads(const DownloadQuery& q) override { return target_->ExplainQueryDownloads(q); }
  Result<ImportResult> ImportDownloads(const std::vector<Download>& rows) override { return target_->ImportDownloads(rows); }
  Result<int64_t> CreateIncident(const Incident& incident) override { return target_->CreateIncident(incident); }
  Result<Incident> GetIncident(int64_t id) override { return target_->GetIncident(id); }
  Result<std::vector<Incident>> ListIncidents() override { return target_->ListIncidents(); }
  Result<Notification> EnsureNotification(int64_t incident_id, int64_t org_id, const std::string& channel, const std::string& recipients, const std::string& ack_token_hash) override { return target_->EnsureNotification(incident_id, org_id, channel, recipients, ack_token_hash); }
  Status ResetAckToken(int64_t notification_id, const std::string& ack_token_hash) override { return target_->ResetAckToken(notification_id, ack_token_hash); }
  Status RecordNotificationAttempt(int64_t notification_id, bool sent, const std::string& error, int64_t at) override { return target_->RecordNotificationAttempt(notification_id, sent, error, at); }
  Result<std::vector<Notification>> ListNotifications(int64_t incident_id) override { return target_->ListNotifications(incident_id); }
  Status Acknowledge(const std::string& ack_token_hash, int64_t at) override { return target_->Acknowledge(ack_token_hash, at); }
  Result<Notification> EnsureSubjectNotification(const std::string& subject, int64_t org_id, const std::string& channel, const std::string& recipients, const std::string& ack_token_hash) override { return target_->EnsureSubjectNotification(subject, org_id, channel, recipients, ack_token_hash); }
  Result<std::vector<Notification>> ListSubjectNotifications(const std::string& subject_prefix) override { return target_->ListSubjectNotifications(subject_prefix); }
  Result<bool> ClaimNotification(int64_t notification_id, int64_t now, int64_t until) override { return target_->ClaimNotification(notification_id, now, until); }
  Result<std::string> CreateAdvisory(const AdvisoryRow& row, int year) override { return target_->CreateAdvisory(row, year); }
  Result<AdvisoryRow> GetAdvisory(const std::string& id) override { return target_->GetAdvisory(id); }
  Result<std::vector<AdvisoryRow>> ListAdvisories() override { return target_->ListAdvisories(); }
  Status UpdateAdvisory(const AdvisoryRow& row) override { return target_->UpdateAdvisory(row); }
  Result<std::vector<std::string>> OrganisationsThatDownloaded(const std::string& product) override { return target_->OrganisationsThatDownloaded(product); }
  Result<std::optional<ScanVerdict>> GetScanVerdict(const std::string& sha256, const std::string& db_version) override { return target_->GetScanVerdict(sha256, db_version); }
  Status PutScanVerdict(const ScanVerdict& v) override { return target_->PutScanVerdict(v); }

 protected:
  Store* target_;
};

}  // namespace patchgate
