// Router: authenticates a management request (HTTP basic auth against the broker's users)
// and hands it to its resource by the first path segment after /api.
//
// Runs on the broker's io_context thread; pure request -> response.
#pragma once

#include <string_view>

#include "management/api.h"

namespace warren::management {

// Splits "/api/queues/%2F/q?x=1" into decoded segments and query; false when the path is
// not under /api/ or a segment's percent-encoding is malformed.
bool parse_target(std::string_view target, Request& out);
std::string percent_decode(std::string_view s, bool* ok);

// `authorization` is the Authorization header's value; `loopback` whether the peer is a
// loopback address (loopback_users may only log in from there).
// `local_token` (may be empty) is HttpServer::local_token(): "warrenctl" with it, from
// loopback, is the local operator with administrator rights.
// A deferred() answer (status 0) comes later through `reply_later`.
Response route(broker::Broker& broker, const Request& r, std::string_view authorization,
               bool loopback, std::string_view local_token = {},
               std::function<void(Response)> reply_later = {});

}  // namespace warren::management
