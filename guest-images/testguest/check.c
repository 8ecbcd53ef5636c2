#include "check.h"

#include <stdarg.h>

#include "arch.h"
#include "print.h"

enum {
  kExitPort = 0xf4,
  kMaxExitCode = 127,  // QEMU's isa-debug-exit reports (code << 1) | 1 as a process status
  kNameMax = 160,
};

static int failures;

bool check(bool cond, const char* name) {
  printf("%s %s\n", cond ? "ok  " : "FAIL", name);
  if (!cond) failures++;
  return cond;
}

bool checkf(bool cond, const char* fmt, ...) {
  char name[kNameMax];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof(name), fmt, ap);
  va_end(ap);
  return check(cond, name);
}

void note(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("# ");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
}

int check_failures(void) { return failures; }

void finish(void) {
  if (failures == 0) {
    printf("TESTGUEST PASS\n");
    outl(kExitPort, 0);
  } else {
    printf("TESTGUEST FAIL %d\n", failures);
    outl(kExitPort, failures > kMaxExitCode ? kMaxExitCode : (uint32_t)failures);
  }
  halt_forever();
}
