// libFuzzer target: HTTP responses from the network, as the client's fetcher reads them.
// The input is split in two at a point taken from its first byte, so bytes arriving in
// pieces are exercised too. Checks: no crash; the body passed on never exceeds what a
// Content-Length announced; a response fed whole and fed in two pieces parse alike.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "client/http_response.h"

namespace {
using patchgate::Status;
using patchgate::client::HttpResponseParser;

struct Outcome {
  bool ok = true, done = false;
  std::string body;
};

Outcome Run(std::string_view a, std::string_view b) {
  HttpResponseParser p;
  Outcome o;
  auto sink = [&](std::string_view c) {
    o.body.append(c);
    return Status::OK();
  };
  for (std::string_view piece : {a, b}) {
    while (!piece.empty() && !p.done()) {
      auto used = p.Feed(piece, sink);
      if (!used.ok()) {
        o.ok = false;
        return o;
      }
      if (*used > piece.size()) std::abort();
      piece.remove_prefix(*used);
    }
  }
  if (p.head_done() && p.head().framing == patchgate::client::HttpResponseHead::Framing::kLength &&
      o.body.size() > p.head().content_length)
    std::abort();
  if (!p.Eof().ok()) o.ok = false;
  o.done = p.done();
  return o;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  size_t cut = in.empty() ? 0 : data[0] % (in.size() + 1);
  Outcome whole = Run(in, {});
  Outcome split = Run(in.substr(0, cut), in.substr(cut));
  if (whole.ok != split.ok || whole.body != split.body || whole.done != split.done) std::abort();
  (void)patchgate::client::ParseResponseHead(in, {});
  return 0;
}
