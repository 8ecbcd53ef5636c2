// CPU primitives for the test guest: port I/O, MMIO, MSRs and interrupt control. Everything
// here is an instruction KVM's emulator handles, so the guest also runs where every instruction
// is emulated.
#pragma once

#include <stdbool.h>
#include <stdint.h>

static inline void outb(uint16_t port, uint8_t v) {
  __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port));
}
static inline void outw(uint16_t port, uint16_t v) {
  __asm__ volatile("outw %0, %1" ::"a"(v), "Nd"(port));
}
static inline void outl(uint16_t port, uint32_t v) {
  __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port) {
  uint8_t v;
  __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
static inline uint16_t inw(uint16_t port) {
  uint16_t v;
  __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
static inline uint32_t inl(uint16_t port) {
  uint32_t v;
  __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}

// MMIO through volatile pointers; each access is exactly one load or store of that width.
static inline uint8_t mmio_read8(uint64_t addr) { return *(volatile uint8_t*)addr; }
static inline uint16_t mmio_read16(uint64_t addr) { return *(volatile uint16_t*)addr; }
static inline uint32_t mmio_read32(uint64_t addr) { return *(volatile uint32_t*)addr; }
static inline void mmio_write8(uint64_t addr, uint8_t v) { *(volatile uint8_t*)addr = v; }
static inline void mmio_write16(uint64_t addr, uint16_t v) { *(volatile uint16_t*)addr = v; }
static inline void mmio_write32(uint64_t addr, uint32_t v) { *(volatile uint32_t*)addr = v; }

static inline uint64_t rdmsr(uint32_t msr) {
  uint32_t lo, hi;
  __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
  return ((uint64_t)hi << 32) | lo;
}
static inline void wrmsr(uint32_t msr, uint64_t v) {
  __asm__ volatile("wrmsr" ::"c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

static inline uint64_t rdtsc(void) {
  uint32_t lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return ((uint64_t)hi << 32) | lo;
}

static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline void irq_disable(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void irq_enable(void) { __asm__ volatile("sti" ::: "memory"); }

// STI delays interrupt delivery by one instruction, so an interrupt already pending wakes the
// HLT instead of being taken before it (which would leave the CPU halted with nothing to wait
// for). Returns with interrupts disabled again.
static inline void irq_enable_and_halt(void) { __asm__ volatile("sti; hlt; cli" ::: "memory"); }

static inline void halt_forever(void) __attribute__((noreturn));
static inline void halt_forever(void) {
  for (;;) __asm__ volatile("cli; hlt" ::: "memory");
}

static inline void compiler_barrier(void) { __asm__ volatile("" ::: "memory"); }
