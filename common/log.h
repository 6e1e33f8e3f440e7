// Logging: spdlog with RabbitMQ's level names, to stderr.
//
// Thread-safe; call init_logging() once at start. Never log passwords.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace warren::common {

// level: debug | info | warning | error | critical | none
void init_logging(const std::string& level);

// Logs to stderr when `console` (at console_level), and to `file` when not empty (at
// file_level, appending); an empty level is `level`. Returns false with `error` set when the
// file cannot be opened.
struct LogOptions {
  std::string level = "info";
  bool console = true;
  std::string console_level;
  std::string file;
  std::string file_level;
};
bool init_logging(const LogOptions& o, std::string& error);

}  // namespace warren::common

#define WLOG_DEBUG(...) ::spdlog::debug(__VA_ARGS__)
#define WLOG_INFO(...) ::spdlog::info(__VA_ARGS__)
#define WLOG_WARN(...) ::spdlog::warn(__VA_ARGS__)
#define WLOG_ERROR(...) ::spdlog::error(__VA_ARGS__)
