#include "print.h"

#include <stdbool.h>
#include <stdint.h>

#include "uart.h"

struct sink {
  char* buf;  // NULL: write to the UART
  size_t size;
  size_t len;
};

static void emit(struct sink* s, char c) {
  if (!s->buf) {
    uart_putc(c);
  } else if (s->len + 1 < s->size) {
    s->buf[s->len] = c;
  }
  s->len++;
}

struct spec {
  int width;
  bool zero_pad;
  int longs;  // number of 'l' modifiers
};

static void emit_number(struct sink* s, uint64_t v, unsigned base, bool negative, bool upper,
                        const struct spec* sp) {
  const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = digits[v % base];
    v /= base;
  } while (v && n < (int)sizeof(tmp));
  int pad = sp->width - n - (negative ? 1 : 0);
  if (negative && sp->zero_pad) emit(s, '-');
  for (; pad > 0; pad--) emit(s, sp->zero_pad ? '0' : ' ');
  if (negative && !sp->zero_pad) emit(s, '-');
  while (n) emit(s, tmp[--n]);
}

static void emit_string(struct sink* s, const char* str, const struct spec* sp) {
  if (!str) str = "(null)";
  int len = 0;
  while (str[len]) len++;
  for (int pad = sp->width - len; pad > 0; pad--) emit(s, ' ');
  while (*str) emit(s, *str++);
}

static uint64_t take_unsigned(va_list* ap, int longs) {
  if (longs >= 2) return va_arg(*ap, unsigned long long);
  if (longs == 1) return va_arg(*ap, unsigned long);
  return va_arg(*ap, unsigned int);
}

static int64_t take_signed(va_list* ap, int longs) {
  if (longs >= 2) return va_arg(*ap, long long);
  if (longs == 1) return va_arg(*ap, long);
  return va_arg(*ap, int);
}

static const char* parse_spec(const char* f, struct spec* sp) {
  *sp = (struct spec){0};
  if (*f == '0') {
    sp->zero_pad = true;
    f++;
  }
  while (*f >= '0' && *f <= '9') sp->width = sp->width * 10 + (*f++ - '0');
  while (*f == 'l') {
    sp->longs++;
    f++;
  }
  return f;
}

static void format(struct sink* s, const char* f, va_list* ap) {
  for (; *f; f++) {
    if (*f != '%') {
      emit(s, *f);
      continue;
    }
    struct spec sp;
    f = parse_spec(f + 1, &sp);
    switch (*f) {
      case 'd':
      case 'i': {
        int64_t v = take_signed(ap, sp.longs);
        emit_number(s, v < 0 ? -(uint64_t)v : (uint64_t)v, 10, v < 0, false, &sp);
        break;
      }
      case 'u':
        emit_number(s, take_unsigned(ap, sp.longs), 10, false, false, &sp);
        break;
      case 'x':
        emit_number(s, take_unsigned(ap, sp.longs), 16, false, false, &sp);
        break;
      case 'X':
        emit_number(s, take_unsigned(ap, sp.longs), 16, false, true, &sp);
        break;
      case 'p':
        emit(s, '0');
        emit(s, 'x');
        emit_number(s, (uintptr_t)va_arg(*ap, void*), 16, false, false, &sp);
        break;
      case 's':
        emit_string(s, va_arg(*ap, const char*), &sp);
        break;
      case 'c':
        emit(s, (char)va_arg(*ap, int));
        break;
      case '%':
        emit(s, '%');
        break;
      case '\0':
        return;
      default:
        emit(s, '%');
        emit(s, *f);
        break;
    }
  }
}

int vprintf(const char* fmt, va_list ap) {
  struct sink s = {0};
  va_list copy;
  va_copy(copy, ap);
  format(&s, fmt, &copy);
  va_end(copy);
  return (int)s.len;
}

int printf(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vprintf(fmt, ap);
  va_end(ap);
  return n;
}

int vsnprintf(char* buf, size_t size, const char* fmt, va_list ap) {
  struct sink s = {.buf = buf, .size = size};
  va_list copy;
  va_copy(copy, ap);
  format(&s, fmt, &copy);
  va_end(copy);
  if (size) buf[s.len < size ? s.len : size - 1] = '\0';
  return (int)s.len;
}

int snprintf(char* buf, size_t size, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, size, fmt, ap);
  va_end(ap);
  return n;
}
