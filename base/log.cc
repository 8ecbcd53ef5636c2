#include "base/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <string>

namespace ioasis::log {

Result<void> init(std::string_view level) {
  auto parsed = spdlog::level::from_str(std::string(level));
  // from_str maps unknown names to `off`; only accept `off` when it was asked for.
  if (parsed == spdlog::level::off && level != "off") {
    return Error(Errc::kInvalidArgument, "unknown log level '" + std::string(level) +
                                             "' (expected trace, debug, info, warn, error or off)");
  }
  auto logger = spdlog::get("ioasis");
  if (!logger) logger = spdlog::stderr_color_mt("ioasis");
  logger->set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
  logger->set_level(parsed);
  spdlog::set_default_logger(logger);
  return {};
}

}  // namespace ioasis::log
