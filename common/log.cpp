#include "common/log.h"

#include <spdlog/sinks/stdout_sinks.h>

namespace warren::common {

void init_logging(const std::string& level) {
  auto logger = spdlog::stderr_logger_mt("warren");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e [%l] %v");
  spdlog::level::level_enum l = spdlog::level::info;
  if (level == "debug") l = spdlog::level::debug;
  else if (level == "warning") l = spdlog::level::warn;
  else if (level == "error") l = spdlog::level::err;
  else if (level == "critical") l = spdlog::level::critical;
  else if (level == "none") l = spdlog::level::off;
  spdlog::set_level(l);
  spdlog::flush_on(spdlog::level::info);
}

}  // namespace warren::common
