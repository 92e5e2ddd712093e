#include "server/http_response.h"

#include <ctime>

namespace patchgate::server {

const char* ReasonPhrase(int s) {
  switch (s) {
    case 200: return "OK";
    case 206: return "Partial Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
  }
  return "Error";
}

const std::string& HttpDate() {
  thread_local time_t last = 0;
  thread_local std::string text;
  time_t now = ::time(nullptr);
  if (now != last) {
    struct tm tm {};
    gmtime_r(&now, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    text = buf;
    last = now;
  }
  return text;
}

std::string ResponseHead(int status, const HeaderList& headers, uint64_t length, bool keep_alive) {
  std::string h;
  h.reserve(256);
  h += "HTTP/1.1 ";
  h += std::to_string(status);
  h += ' ';
  h += ReasonPhrase(status);
  h += "\r\nServer: patchgate\r\nDate: ";
  h += HttpDate();
  h += "\r\n";
  for (const auto& [k, v] : headers) {
    h += k;
    h += ": ";
    h += v;
    h += "\r\n";
  }
  h += "Content-Length: ";
  h += std::to_string(length);
  h += keep_alive ? "\r\nConnection: keep-alive\r\n\r\n" : "\r\nConnection: close\r\n\r\n";
  return h;
}

}  // namespace patchgate::server
