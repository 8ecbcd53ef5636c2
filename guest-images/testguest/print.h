// A small printf to the UART: %d %i %u %x %X %p %s %c %%, the l and ll length modifiers, a
// field width and the 0 flag ("%08lx"). Nothing else.
#pragma once

#include <stdarg.h>
#include <stddef.h>

int printf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char* fmt, va_list ap);
// Formats into buf (always terminated when size > 0); returns the untruncated length.
int snprintf(char* buf, size_t size, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
int vsnprintf(char* buf, size_t size, const char* fmt, va_list ap);
