// The management console: one self-contained HTML page (management/console/index.html,
// inline CSS and JavaScript, no external resources) that drives the /api/... endpoints from
// the browser, as RabbitMQ's management plugin serves its UI at "/".
//
// The bytes are embedded at build time by management/console/embed.py; they are immutable
// and may be read from any thread.
#pragma once

#include <string_view>

namespace warren::management {

extern const std::string_view kConsolePage;

}  // namespace warren::management
