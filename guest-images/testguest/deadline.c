#include "deadline.h"

#include "lapic.h"

enum {
  kTicksPerMs = 62500,  // 1 GHz divided by 16
  kMaxMs = 60000,
};

static bool running;

struct deadline deadline_after_ms(uint32_t ms) {
  if (ms > kMaxMs) ms = kMaxMs;
  if (!running || lapic_read(kLapicTimerCurrent) < (uint32_t)kMaxMs * kTicksPerMs) {
    lapic_write(kLapicLvtTimer, kLapicLvtMasked);
    lapic_write(kLapicTimerDivide, kLapicTimerDivideBy16);
    lapic_write(kLapicTimerInitial, 0xffffffffu);
    running = true;
  }
  return (struct deadline){lapic_read(kLapicTimerCurrent), ms * (uint32_t)kTicksPerMs};
}

static uint32_t elapsed_ticks(const struct deadline* d) {
  uint32_t now = lapic_read(kLapicTimerCurrent);
  // A stopped timer reads 0: everything has elapsed.
  return now > d->start ? 0xffffffffu : d->start - now;
}

bool deadline_expired(const struct deadline* d) { return elapsed_ticks(d) >= d->ticks; }

uint32_t deadline_elapsed_ms(const struct deadline* d) { return elapsed_ticks(d) / kTicksPerMs; }
