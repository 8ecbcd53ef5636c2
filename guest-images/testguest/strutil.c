#include "strutil.h"

void* memset(void* dst, int c, size_t n) {
  volatile uint8_t* d = dst;  // volatile keeps gcc from turning the loop back into memset()
  for (size_t i = 0; i < n; i++) d[i] = (uint8_t)c;
  return dst;
}

void* memcpy(void* dst, const void* src, size_t n) {
  volatile uint8_t* d = dst;
  const uint8_t* s = src;
  for (size_t i = 0; i < n; i++) d[i] = s[i];
  return dst;
}

void* memmove(void* dst, const void* src, size_t n) {
  volatile uint8_t* d = dst;
  const uint8_t* s = src;
  if (d < s) {
    for (size_t i = 0; i < n; i++) d[i] = s[i];
  } else {
    for (size_t i = n; i > 0; i--) d[i - 1] = s[i - 1];
  }
  return dst;
}

int memcmp(const void* a, const void* b, size_t n) {
  const uint8_t* x = a;
  const uint8_t* y = b;
  for (size_t i = 0; i < n; i++) {
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  }
  return 0;
}

size_t strlen(const char* s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}

int strcmp(const char* a, const char* b) {
  while (*a && *a == *b) {
    a++;
    b++;
  }
  return (uint8_t)*a - (uint8_t)*b;
}

size_t str_nlen(const char* s, size_t max) {
  size_t n = 0;
  while (n < max && s[n]) n++;
  return n;
}

bool str_starts_with(const char* s, const char* prefix) {
  while (*prefix) {
    if (*s++ != *prefix++) return false;
  }
  return true;
}
