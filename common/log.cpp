#include "common/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace warren::common {

namespace {
spdlog::level::level_enum to_level(const std::string& level) {
  if (level == "debug") return spdlog::level::debug;
  if (level == "warning") return spdlog::level::warn;
  if (level == "error") return spdlog::level::err;
  if (level == "critical") return spdlog::level::critical;
  if (level == "none") return spdlog::level::off;
  return spdlog::level::info;
}
}  // namespace

void init_logging(const std::string& level) {
  std::string error;
  init_logging(LogOptions{level, true, "", "", ""}, error);
}

bool init_logging(const LogOptions& o, std::string& error) {
  std::vector<spdlog::sink_ptr> sinks;
  auto lowest = spdlog::level::off;
  if (o.console) {
    auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    sink->set_level(to_level(o.console_level.empty() ? o.level : o.console_level));
    lowest = std::min(lowest, sink->level());
    sinks.push_back(sink);
  }
  bool ok = true;
  if (!o.file.empty()) {
    try {
      auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(o.file, false);
      sink->set_level(to_level(o.file_level.empty() ? o.level : o.file_level));
      lowest = std::min(lowest, sink->level());
      sinks.push_back(sink);
    } catch (const spdlog::spdlog_ex& e) {
      error = e.what();
      ok = false;
    }
  }
  auto logger = std::make_shared<spdlog::logger>("warren", sinks.begin(), sinks.end());
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e [%l] %v");
  spdlog::set_level(lowest);
  spdlog::flush_on(spdlog::level::info);
  return ok;
}

}  // namespace warren::common
