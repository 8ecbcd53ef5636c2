// Wall-clock timeouts for polling loops, from the LAPIC timer's current count: a masked one-shot
// countdown needs no interrupt and no TSC calibration. KVM's LAPIC timer ticks at 1 GHz before
// the divider, on QEMU and on ioasis alike.
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct deadline {
  uint32_t start;
  uint32_t ticks;
};

// Starts (or restarts) the free-running countdown and returns a deadline ms from now. Needs the
// LAPIC software-enabled; only one countdown exists, so deadlines do not nest across restarts.
struct deadline deadline_after_ms(uint32_t ms);
bool deadline_expired(const struct deadline* d);
// Milliseconds since the deadline was started.
uint32_t deadline_elapsed_ms(const struct deadline* d);
