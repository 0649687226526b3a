/* Reset entry of the CH32V003/V002 image: the QingKe V2A core starts executing at address 0.
 * No interrupts are used, so the "vector table" is the reset jump plus the NMI and HardFault
 * slots, and mtvec points every trap at one handler that parks the core. */
    .option arch, +zicsr

    .section .init, "ax"
    .globl _start
_start:
    j       reset_handler
    .word   0                       /* vector 1: reserved */
    .word   trap_handler            /* vector 2: NMI */
    .word   trap_handler            /* vector 3: HardFault */

    .section .text.reset_handler, "ax"
reset_handler:
    .option push
    .option norelax
    la      gp, __global_pointer$
    .option pop
    la      sp, __stack_top
    la      t0, trap_handler        /* mtvec mode 0: one entry for all traps */
    csrw    mtvec, t0

    /* .data and .ramfunc: copy their load images from flash to SRAM (one contiguous block). */
    la      a0, __data_load
    la      a1, __data_start
    la      a2, __data_end
1:  bgeu    a1, a2, 2f
    lw      t0, 0(a0)
    sw      t0, 0(a1)
    addi    a0, a0, 4
    addi    a1, a1, 4
    j       1b
2:
    /* .bss: zero. */
    la      a1, __bss_start
    la      a2, __bss_end
3:  bgeu    a1, a2, 4f
    sw      zero, 0(a1)
    addi    a1, a1, 4
    j       3b
4:
    call    main
5:  j       5b

    .section .text.trap_handler, "ax"
    .balign 4
trap_handler:
    j       trap_handler
