// test=power-button: a guest that honours the ACPI power button as an OS would, without AML:
// it routes the Generic Event Device's interrupt (GSI `gsi`, default 10, edge, active high) to a
// vector through the IOAPIC, waits up to `wait_ms` (default 30000) for it, then powers off through
// the hardware-reduced sleep control register with \_S5's SLP_TYP. The VM ends in a power-off;
// without a press the scenario fails.
#include "arch.h"
#include "check.h"
#include "idt.h"
#include "ioapic.h"
#include "lapic.h"
#include "print.h"
#include "scenario.h"

enum {
  kVectorButton = 0x61,
  kVectorTick = 0x62,
  kVectorSpurious = 0xff,
  kTickCount = 6250000,  // 100 ms at 62500 LAPIC counts per ms (divide by 16)
  kSleepControlPort = 0x600,
  kSleepTypeS5 = 5,
  kSleepEnable = 1 << 5,
};

static volatile int pressed;
static volatile int ticks;

static INTERRUPT_HANDLER(button_handler) {
  pressed++;
  lapic_eoi();
}

static INTERRUPT_HANDLER(tick_handler) {
  ticks++;
  lapic_eoi();
}

static INTERRUPT_HANDLER(spurious_handler) {}

void scenario_power_button(const struct boot_info* boot) {
  uint64_t gsi = 10, wait_ms = 30000;
  cmdline_get_uint(boot->cmdline, "gsi", &gsi);
  cmdline_get_uint(boot->cmdline, "wait_ms", &wait_ms);
  if (!checkf(gsi < 24, "gsi=%lu is an IOAPIC pin", gsi)) return;

  irq_disable();
  legacy_pic_mask_all();
  idt_set_handler(kVectorButton, button_handler);
  idt_set_handler(kVectorTick, tick_handler);
  idt_set_handler(kVectorSpurious, spurious_handler);
  const char* error = "";
  if (!check(lapic_enable(kVectorSpurious, &error), "LAPIC enabled in xAPIC mode")) {
    printf("lapic: %s\n", error);
    return;
  }
  ioapic_route((uint32_t)gsi, kVectorButton, IOAPIC_EDGE, IOAPIC_ACTIVE_HIGH, false);
  printf("waiting for the power button on GSI %lu\n", gsi);
  for (uint64_t waited = 0; !pressed && waited < wait_ms; waited += 100) {
    int before = ticks;
    lapic_timer_start_oneshot(kVectorTick, kLapicTimerDivideBy16, kTickCount);
    while (!pressed && ticks == before) irq_enable_and_halt();
  }
  lapic_timer_stop();
  if (!check(pressed > 0, "the power button was pressed")) return;
  printf("power button pressed: powering off\n");
  outb(kSleepControlPort, (uint8_t)(kSleepTypeS5 << 2 | kSleepEnable));
  // The VMM stops the VM on that write; reaching this line means it did not.
  check(false, "the sleep control register powered the VM off");
}
