// test=heartbeat: a guest that stays up and shows it is running: "tick N" on the console every
// `period_ms` (default 100) of LAPIC timer time, for `ticks` ticks (default: forever), then
// a pass. Lifecycle tests use it to see a VM run, stop running while paused, and go on after
// resume.
#include "arch.h"
#include "check.h"
#include "idt.h"
#include "lapic.h"
#include "print.h"
#include "scenario.h"

enum {
  kVectorTick = 0x50,
  kVectorSpurious = 0xff,
  // KVM's LAPIC timer runs at 1 GHz; divided by 16 that is 62500 counts per millisecond.
  kCountsPerMs = 62500,
};

static volatile uint64_t ticks;

static INTERRUPT_HANDLER(tick_handler) {
  ticks++;
  lapic_eoi();
}

static INTERRUPT_HANDLER(spurious_handler) {}

void scenario_heartbeat(const struct boot_info* boot) {
  uint64_t period_ms = 100, limit = 0;
  cmdline_get_uint(boot->cmdline, "period_ms", &period_ms);
  cmdline_get_uint(boot->cmdline, "ticks", &limit);
  if (period_ms == 0 || period_ms > 60000) period_ms = 100;

  irq_disable();
  legacy_pic_mask_all();
  idt_set_handler(kVectorTick, tick_handler);
  idt_set_handler(kVectorSpurious, spurious_handler);
  const char* error = "";
  if (!check(lapic_enable(kVectorSpurious, &error), "LAPIC enabled in xAPIC mode")) {
    printf("lapic: %s\n", error);
    return;
  }
  printf("heartbeat every %lu ms\n", period_ms);
  for (uint64_t seen = 0; limit == 0 || seen < limit;) {
    lapic_timer_start_oneshot(kVectorTick, kLapicTimerDivideBy16,
                              (uint32_t)(period_ms * kCountsPerMs));
    // The timer is armed, so the halt ends at the latest when it fires.
    while (ticks == seen) irq_enable_and_halt();
    seen = ticks;
    printf("tick %lu\n", seen);
  }
  check(true, "heartbeat ran its ticks");
}
