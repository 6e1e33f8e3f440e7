// Logging: spdlog with RabbitMQ's level names, to stderr.
//
// Thread-safe; call init_logging() once at start. Never log passwords.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace warren::common {

// level: debug | info | warning | error | critical | none
void init_logging(const std::string& level);

}  // namespace warren::common

#define WLOG_DEBUG(...) ::spdlog::debug(__VA_ARGS__)
#define WLOG_INFO(...) ::spdlog::info(__VA_ARGS__)
#define WLOG_WARN(...) ::spdlog::warn(__VA_ARGS__)
#define WLOG_ERROR(...) ::spdlog::error(__VA_ARGS__)
