// test=irq: IDT, LAPIC software enable, a fixed self-IPI and a one-shot LAPIC timer, each
// taken with sti; hlt and acknowledged with EOI.
//
// HLT only returns on an interrupt, so every halt is guarded: the self-IPI waits run under a
// one-shot watchdog timer, and the timer wait halts only while the timer is still counting.
#include "arch.h"
#include "check.h"
#include "idt.h"
#include "lapic.h"
#include "print.h"
#include "scenario.h"

enum {
  kVectorIpi = 0x40,
  kVectorTimer = 0x41,
  kVectorWatchdog = 0x42,
  kVectorSpurious = 0xff,
  kMaxWakeups = 64,
  // KVM's LAPIC timer ticks at 1 GHz before the divider: 100000 x 16 is 1.6 ms, the
  // watchdog 3125000 x 16 is 50 ms.
  kTimerCount = 100000,
  kWatchdogCount = 3125000,
};

static volatile int ipi_count;
static volatile int timer_count;
static volatile int watchdog_count;
static volatile int spurious_count;
static volatile bool ipi_in_service;
static volatile bool timer_in_service;

static INTERRUPT_HANDLER(ipi_handler) {
  ipi_in_service = lapic_isr(kVectorIpi);
  ipi_count++;
  lapic_eoi();
}

static INTERRUPT_HANDLER(timer_handler) {
  timer_in_service = lapic_isr(kVectorTimer);
  timer_count++;
  lapic_eoi();
}

static INTERRUPT_HANDLER(watchdog_handler) {
  watchdog_count++;
  lapic_eoi();
}

// The spurious vector is never acknowledged (SDM vol. 3, 11.9).
static INTERRUPT_HANDLER(spurious_handler) { spurious_count++; }

// Halts until *counter reaches target, the watchdog fires, or the wakeup budget is spent.
static bool wait_under_watchdog(volatile int* counter, int target) {
  int watchdog_before = watchdog_count;
  lapic_timer_start_oneshot(kVectorWatchdog, kLapicTimerDivideBy16, kWatchdogCount);
  for (int i = 0; i < kMaxWakeups && *counter < target && watchdog_count == watchdog_before; i++) {
    irq_enable_and_halt();
  }
  lapic_timer_stop();
  return *counter >= target;
}

static void check_self_ipi(void) {
  check(lapic_send_self_ipi(kVectorIpi), "self-IPI accepted (ICR delivery status idle)");
  // Interrupts are off, so the IPI can only be waiting in the IRR.
  check(lapic_irr(kVectorIpi) && ipi_count == 0, "self-IPI pending in IRR while IF=0");
  check(wait_under_watchdog(&ipi_count, 1), "self-IPI handler ran after sti; hlt");
  // The PVM-nested KVM this project tests on never shows a vector in service (ISR and PPR
  // read 0 inside handlers), so this is reported rather than checked.
  note("ISR shows the IPI vector in service inside its handler: %s", ipi_in_service ? "yes" : "no");
  check(!lapic_isr(kVectorIpi), "EOI cleared the in-service bit");
  // An unacknowledged vector would block a second one of the same priority class.
  lapic_send_self_ipi(kVectorIpi);
  check(wait_under_watchdog(&ipi_count, 2) && ipi_count == 2, "second self-IPI delivered");
}

static void check_oneshot_timer(void) {
  uint64_t start = rdtsc();
  lapic_timer_start_oneshot(kVectorTimer, kLapicTimerDivideBy16, kTimerCount);
  uint32_t current = lapic_read(kLapicTimerCurrent);
  checkf(current > 0 && current < kTimerCount, "timer counts down (current %u of %u)", current,
         kTimerCount);
  for (int i = 0; i < kMaxWakeups && timer_count == 0; i++) {
    // Halting with the timer expired and nothing pending would never return.
    if (lapic_read(kLapicTimerCurrent) == 0 && !lapic_irr(kVectorTimer)) break;
    irq_enable_and_halt();
  }
  uint64_t cycles = rdtsc() - start;
  check(timer_count == 1, "one-shot timer interrupt taken");
  printf("timer fired after %lu TSC cycles\n", cycles);
  note("ISR shows the timer vector in service inside its handler: %s",
       timer_in_service ? "yes" : "no");
  check(!lapic_isr(kVectorTimer), "EOI cleared the timer's in-service bit");
  // A periodic timer would have reloaded the initial count.
  check(lapic_read(kLapicTimerCurrent) == 0, "one-shot timer stopped at zero");
  lapic_timer_stop();
}

void scenario_irq(const struct boot_info* boot) {
  (void)boot;
  irq_disable();
  legacy_pic_mask_all();
  idt_set_handler(kVectorIpi, ipi_handler);
  idt_set_handler(kVectorTimer, timer_handler);
  idt_set_handler(kVectorWatchdog, watchdog_handler);
  idt_set_handler(kVectorSpurious, spurious_handler);
  const char* error = "";
  if (!check(lapic_enable(kVectorSpurious, &error), "LAPIC enabled in xAPIC mode")) {
    printf("lapic: %s\n", error);
    return;
  }
  printf("LAPIC id %u version 0x%x\n", lapic_id(), lapic_read(kLapicVersion));
  check_self_ipi();
  check_oneshot_timer();
  checkf(idt_unexpected_interrupts() == 0, "no unexpected interrupts (%d)",
         idt_unexpected_interrupts());
  printf("spurious interrupts: %d\n", spurious_count);
}
