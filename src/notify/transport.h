// Delivery channels: e-mail (SMTP, with attachments) and signed JSON webhooks, behind one
// seam so tests and benchmarks can count, fail or slow sends without a network.
// NewCurlTransport is thread-safe: it keeps a small pool of libcurl handles, so each
// handle's SMTP connection is reused from message to message (no new TCP/TLS handshake
// and EHLO per message) and several threads may send at once, each on its own connection.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace patchgate::notify {

struct Attachment {
  std::string filename;      // e.g. "downloads.csv"
  std::string content_type;  // e.g. "text/csv; charset=utf-8"
  std::string data;
};

struct Mail {
  std::string from;
  std::vector<std::string> to, cc;
  std::string subject, body;  // body: text/plain UTF-8, bounded by its composer
  std::vector<Attachment> attachments;
};

// The RFC 5322 message (CRLF line ends; multipart/mixed with base64 parts when there are
// attachments). Header values are single lines: CR and LF in them are replaced by spaces.
std::string RenderMessage(const Mail& m, const std::string& date, const std::string& message_id);

class Transport {
 public:
  virtual ~Transport() = default;
  virtual Status SendMail(const Mail& mail) = 0;
  virtual Status PostWebhook(const std::string& url, const std::string& body, const std::string& signature) = 0;
};
// smtp_url: smtp://[user:pass@]host:port (STARTTLS when offered; add ?starttls=required to
// insist) or smtps://[user:pass@]host:port.
std::unique_ptr<Transport> NewCurlTransport(const std::string& smtp_url);

}  // namespace patchgate::notify
