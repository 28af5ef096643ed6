/*
 * The C side of `accountant.port_check impl=radix-bound-capi`: checks made
 * from C code, by a direct call of libioacct's exported `ioacct_port_check8`,
 * as a C hypervisor's exit handler makes them. The loop does per check what
 * the Rust rows' loop does: the next entry of the shuffled order
 * (`i % len`), the domain's checker, one check, the result kept.
 *
 * The remainder is computed as rustc (LLVM) compiles the Rust rows' `%` on
 * x86-64: a 32-bit division when both operands fit in 32 bits, a 64-bit one
 * otherwise (read in the bench binary's disassembly). gcc emits a 64-bit
 * `div` for `%` on uint64_t, slower on many x86 cores: a difference of the
 * harness loops, not of the check.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ioacct.h"

/* `a % b` by the division rustc's loop uses (see above). */
static inline uint64_t rem(uint64_t a, uint64_t b)
{
    if (((a | b) >> 32) == 0)
        return (uint32_t)a % (uint32_t)b;
    return a % b;
}

/* What the Rust rows' `black_box(v)` does to a value: it goes through
 * memory, and the compiler may assume nothing about it. */
static inline uint16_t opaque16(uint16_t v)
{
    __asm__ volatile("" : "+m"(v));
    return v;
}

static inline bool opaque_bool(bool v)
{
    __asm__ volatile("" : "+m"(v));
    return v;
}

/* Checks entries `start .. start + n` (modulo `len`) of `order`, pairs of
 * (domain, port), each with the domain's checker `checkers[domain]`
 * (`ncheckers` of them); returns how many were allowed. Per check, what the
 * Rust rows' closure does: the order's entry and the checker array indexed
 * with a bounds check each, the domain and the port through `black_box`,
 * the result through `black_box`. */
uint64_t ioacct_bench_port_checks(struct ioacct_port_checker *const *checkers, uint64_t ncheckers,
                                  const uint16_t (*order)[2], uint64_t len, uint64_t start,
                                  uint64_t n)
{
    uint64_t allowed = 0;
    for (uint64_t i = start; i < start + n; i++) {
        uint64_t k = rem(i, len);
        if (k >= len)
            __builtin_trap();
        uint16_t d = opaque16(order[k][0]), port = order[k][1];
        if (d >= ncheckers)
            __builtin_trap();
        allowed += opaque_bool(ioacct_port_check8(checkers[d], opaque16(port)));
    }
    return allowed;
}
