#include "devices/legacy/debug_exit.h"

#include <algorithm>

namespace ioasis::devices {

void DebugExit::read(uint64_t, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0xff);
}

void DebugExit::write(uint64_t offset, std::span<const uint8_t> data) {
  if (data.empty() || data.size() > 4 || offset + data.size() > kPortCount) return;
  uint32_t value = 0;
  for (size_t i = 0; i < data.size(); ++i) value |= uint32_t{data[i]} << (8 * i);
  if (on_exit_) on_exit_(value);
}

}  // namespace ioasis::devices
