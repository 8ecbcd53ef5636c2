// Test reporting: one line per check ("ok   name" or "FAIL name"), then a verdict line and the
// exit port.
#pragma once

#include <stdbool.h>

// Records one check and prints its line; returns cond so callers can skip dependent steps.
bool check(bool cond, const char* name);
bool checkf(bool cond, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
// Notes a diagnostic line that is not a check ("# ...").
void note(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
int check_failures(void);

// Prints "TESTGUEST PASS" or "TESTGUEST FAIL <n>", writes 0 or n (1..127) to the exit port at
// 0xf4 and halts if the VMM does not stop the guest.
void finish(void) __attribute__((noreturn));
