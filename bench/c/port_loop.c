/*
 * The C side of `accountant.port_check impl=radix-bound-capi`: checks made
 * from C code, by a direct call of libioacct's exported `ioacct_port_check8`,
 * as a C hypervisor's exit handler makes them. The loop does per check what
 * the Rust rows' loop does: the next entry of the shuffled order
 * (`i % len`), the domain's checker, one check, the result kept.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ioacct.h"

/* Checks entries `start .. start + n` (modulo `len`) of `order`, pairs of
 * (domain, port), each with the domain's checker `checkers[domain]`;
 * returns how many were allowed. */
uint64_t ioacct_bench_port_checks(struct ioacct_port_checker *const *checkers,
                                  const uint16_t (*order)[2], uint64_t len, uint64_t start,
                                  uint64_t n)
{
    uint64_t allowed = 0;
    for (uint64_t i = start; i < start + n; i++) {
        const uint16_t *e = order[i % len];
        allowed += ioacct_port_check8(checkers[e[0]], e[1]);
    }
    return allowed;
}
