#include "proxy/exchange.h"

#include "proxy/http_connection.h"

#include <vector>
#include <nlohmann/json.hpp>

namespace regcache::proxy {

Exchange::Exchange(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp, bool tls_connection)
    : request(req), response(resp), tls(tls_connection) {
  const std::string& uri = req.getURI();
  auto q = uri.find('?');
  path = uri.substr(0, q);
  if (q != std::string::npos) query = uri.substr(q + 1);
}

std::vector<std::string> Exchange::header_values(const std::string& name) const {
  std::vector<std::string> out;
  for (auto it = request.find(name); it != request.end() && Poco::icompare(it->first, name) == 0; ++it)
    out.push_back(it->second);
  return out;
}

void send_error(Exchange& ex, const RegistryError& error) {
  const ErrorInfo& info = error_info(error.code());
  nlohmann::json entry = {{"code", info.wire_code}, {"message", error.what()}};
  if (!error.detail().empty()) entry["detail"] = error.detail();
  std::string body = nlohmann::json{{"errors", nlohmann::json::array({entry})}}.dump();
  ex.response.setStatusAndReason(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(info.http_status));
  if (error.retry_after) ex.response.set("Retry-After", *error.retry_after);
  send_body(ex, body, "application/json");
}

void send_body(Exchange& ex, std::string_view body, const std::string& content_type) {
  ex.response.setContentType(content_type);
  ex.response.setContentLength64(static_cast<Poco::Int64>(body.size()));
  ex.mark_head_sent();
  if (ex.is_head()) {
    ex.response.send();
    return;
  }
  ex.response.sendBuffer(body.data(), body.size());
  ex.body_bytes += body.size();
}

void send_headers(Exchange& ex) {
  ex.mark_head_sent();
  ex.body_stream = &ex.response.send();
  ex.body_stream->flush();
}

void send_file_range(Exchange& ex, int fd, std::uint64_t offset, std::uint64_t count) {
  // The engine knows the connection: sendfile(2) with TCP_CORK on plain
  // connections, the TLS session otherwise.
  http::send_file_to_client(ex.request, fd, offset, count, ex.body_bytes);
}

void send_bytes(Exchange& ex, const char* data, std::size_t count) {
  http::send_bytes_to_client(ex.request, data, count, ex.body_bytes);
}

void abort_connection(Exchange& ex) {
  ex.aborted = true;
  http::abort_client(ex.request);
}

}  // namespace regcache::proxy
