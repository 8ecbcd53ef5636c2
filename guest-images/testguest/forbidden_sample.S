/* One instruction of each class check_instructions.py must reject. Never linked or run. */
  .text
  .code64
forbidden_sample:
  movaps %xmm0, %xmm1
  ud2
  int3
  cmpxchg16b (%rdi)
  xsave (%rdi)
  vpaddd %ymm0, %ymm1, %ymm2
  andn %eax, %ebx, %ecx
  tzcnt %eax, %ebx
  endbr64
  fldz
  ret
  .section .note.GNU-stack, "", @progbits
