// The few string and memory routines the guest needs. gcc may emit calls to memcpy/memset/
// memcmp/memmove even in freestanding code, so those keep their standard names.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void* memset(void* dst, int c, size_t n);
void* memcpy(void* dst, const void* src, size_t n);
void* memmove(void* dst, const void* src, size_t n);
int memcmp(const void* a, const void* b, size_t n);
size_t strlen(const char* s);
int strcmp(const char* a, const char* b);

// Bounded length: at most max bytes are read.
size_t str_nlen(const char* s, size_t max);
// True when s starts with prefix.
bool str_starts_with(const char* s, const char* prefix);
