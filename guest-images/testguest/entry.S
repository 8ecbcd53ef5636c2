/*
 * PVH entry: the VMM enters in 32-bit protected mode with paging off and %ebx pointing at
 * struct hvm_start_info (Xen public/arch-x86/hvm/start_info.h). We zero .bss, identity-map
 * 0-4 GiB with 2 MiB pages, enter long mode and call guest_main().
 */

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define CR0_PE 0x00000001
#define CR0_PG 0x80000000
#define CR4_PAE 0x20
#define MSR_EFER 0xc0000080
#define EFER_LME 0x100
#define PTE_PRESENT_RW 0x3
#define PDE_LARGE 0x83      /* present, writable, 2 MiB page */
#define PDE_UNCACHED 0x18   /* PWT | PCD */
#define MMIO_FIRST_PDE 1536 /* 3 GiB / 2 MiB: the PCI hole and the APICs */
#define SEL_CODE64 0x08
#define SEL_DATA 0x10

/*
 * The note lives in its own PT_NOTE segment (see linker.ld). QEMU reads a pointer-sized value
 * from the descriptor of a 64-bit ELF, so four zero bytes follow the 32-bit entry address,
 * outside the note segment so that note parsers see exactly one well-formed note.
 */
  .section .note.Xen, "a"
  .p2align 2
  .long 4                           /* namesz */
  .long 4                           /* descsz */
  .long XEN_ELFNOTE_PHYS32_ENTRY
  .asciz "Xen"
  .long pvh_start

  .section .pvh_note_pad, "a"
  .long 0

  /* 32-bit code has its own section so that tools decode it as 32-bit (check_instructions.py). */
  .section .boot32, "ax"
  .code32
  .globl pvh_start
pvh_start:
  cli
  cld
  mov %ebx, %esi

  /* The loader may not clear .bss, and the page tables live there. */
  mov $__bss_start, %edi
  mov $__bss_end, %ecx
  sub %edi, %ecx
  shr $2, %ecx
  xor %eax, %eax
  rep stosl
  mov %esi, boot_start_info_paddr

  mov $boot_pdpt, %eax
  or $PTE_PRESENT_RW, %eax
  mov %eax, boot_pml4

  /* Four PDPT entries, one per GiB, each pointing at one page directory. */
  xor %ecx, %ecx
  mov $boot_pd, %eax
  or $PTE_PRESENT_RW, %eax
1:
  mov %eax, boot_pdpt(,%ecx,8)
  add $4096, %eax
  inc %ecx
  cmp $4, %ecx
  jb 1b

  /* 2048 large pages; the top GiB holds only MMIO, so it is mapped uncached. */
  xor %ecx, %ecx
2:
  mov %ecx, %eax
  shl $21, %eax
  or $PDE_LARGE, %eax
  cmp $MMIO_FIRST_PDE, %ecx
  jb 3f
  or $PDE_UNCACHED, %eax
3:
  mov %eax, boot_pd(,%ecx,8)
  inc %ecx
  cmp $2048, %ecx
  jb 2b

  mov %cr4, %eax
  or $CR4_PAE, %eax
  mov %eax, %cr4
  mov $boot_pml4, %eax
  mov %eax, %cr3
  mov $MSR_EFER, %ecx
  rdmsr
  or $EFER_LME, %eax
  wrmsr
  lgdt boot_gdt_descriptor
  mov %cr0, %eax
  or $(CR0_PG | CR0_PE), %eax
  mov %eax, %cr0
  ljmp $SEL_CODE64, $long_mode_entry

  .section .text.entry, "ax"
  .code64
long_mode_entry:
  mov $SEL_DATA, %eax
  mov %eax, %ds
  mov %eax, %es
  mov %eax, %ss
  mov %eax, %fs
  mov %eax, %gs
  mov $boot_stack_top, %rsp
  xor %ebp, %ebp
  call guest_main
halt_forever:
  cli
  hlt
  jmp halt_forever

  .section .rodata
  .p2align 3
boot_gdt:
  .quad 0
  .quad 0x00af9a000000ffff          /* 0x08: 64-bit code, DPL 0 */
  .quad 0x00cf92000000ffff          /* 0x10: flat data, DPL 0 */
boot_gdt_end:
boot_gdt_descriptor:
  .word boot_gdt_end - boot_gdt - 1
  .long boot_gdt

  .section .data
  .p2align 3
  .globl boot_start_info_paddr
boot_start_info_paddr:
  .quad 0

  .section .bss
  .p2align 12
boot_pml4:
  .skip 4096
  .globl boot_pdpt
boot_pdpt:
  .skip 4096
  .globl boot_pd
boot_pd:
  .skip 4 * 4096
  .p2align 4
boot_stack:
  .skip 64 * 1024
boot_stack_top:

  .section .note.GNU-stack, "", @progbits
