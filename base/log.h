// The one logger. Everything the VMM says about itself goes through spdlog at a level; the guest's
// console is data and goes to its own sink (see devices/legacy/serial).
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

#include "base/result.h"

namespace ioasis::log {

// Sets up the process logger on stderr. `level` is one of trace, debug, info, warn, error, off.
Result<void> init(std::string_view level);

}  // namespace ioasis::log
