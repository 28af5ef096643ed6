/*
 * ioacct-count: one call of ioacct_map or ioacct_bind per case, made from C
 * through the freestanding static library, for callgrind to count.
 *
 *     valgrind --tool=callgrind --toggle-collect=ioacct_count_call \
 *         --dump-after=ioacct_count_call ioacct-count CASE...
 *
 * A CASE is OP:TRACKER:UNITS (`map:slab-extent:4096`, `bind:slab-page:1`).
 * Each case is set up as the bench's Rust case is (no boot options, the
 * case's tracker, domain 1, an exclusive grant of the units, one warm-up
 * call and its undo, so the tracker's slab already holds its page), then
 * the call is made once inside ioacct_count_call, the only function
 * callgrind collects in: dump k is exactly case k's call, plus the wrapper's
 * own call and return (a handful of instructions, as the Rust wrapper's).
 * Exit 0 when every call returned IOACCT_OK, 1 when one failed, 2 for bad
 * arguments.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hooks.h"
#include "ioacct.h"

typedef int (*range_fn)(struct ioacct *, uint64_t, uint64_t, uint64_t);

/* The function callgrind collects in: one call of `f`, not inlined. */
__attribute__((noinline)) int ioacct_count_call(range_fn f, struct ioacct *a, uint64_t dom,
                                                uint64_t first, uint64_t last)
{
    int rc = f(a, dom, first, last);
    __asm__ volatile("" ::: "memory");
    return rc;
}

#define IOMEM_BASE 0x100000u
#define IRQ_LINE 10u

/* Runs one case; 0 when it did what it names, 1 when a call failed. */
static int run_case(int is_map, uint32_t tracker, uint64_t units)
{
    struct ioacct_config cfg = {.tracker = tracker, .page_limit = IOACCT_NO_PAGE_LIMIT};
    struct ioacct *a = NULL;
    uint64_t first = is_map ? IOMEM_BASE : IRQ_LINE;
    uint64_t last = first + units - 1;
    range_fn f = is_map ? ioacct_map : ioacct_bind;
    range_fn undo = is_map ? ioacct_unmap : ioacct_unbind;
    int rc = ioacct_boot("", 0, &cfg, &a);
    if (rc == IOACCT_OK)
        rc = ioacct_domain_create(a, 1);
    if (rc == IOACCT_OK)
        rc = ioacct_grant(a, 1, is_map ? IOACCT_IOMEM : IOACCT_IRQ, first, last, 0, NULL, NULL);
    if (rc == IOACCT_OK)
        rc = f(a, 1, first, last);
    if (rc == IOACCT_OK)
        rc = undo(a, 1, first, last);
    if (rc == IOACCT_OK)
        rc = ioacct_count_call(f, a, 1, first, last);
    if (rc != IOACCT_OK)
        fprintf(stderr, "ioacct-count: %s of %llu units: %s\n", is_map ? "map" : "bind",
                (unsigned long long)units, ioacct_strerror(rc));
    ioacct_free(a);
    return rc == IOACCT_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    int failed = 0;
    if (ioacct_init(&hooks) != IOACCT_OK) {
        fprintf(stderr, "ioacct-count: ioacct_init failed\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        char op[8], tracker[16];
        unsigned long long units;
        uint32_t t;
        if (sscanf(argv[i], "%7[a-z]:%15[a-z-]:%llu", op, tracker, &units) != 3 ||
            (strcmp(op, "map") != 0 && strcmp(op, "bind") != 0) || hooks_tracker_of(tracker, &t) != 0 ||
            units == 0 || units > (1u << 20)) {
            fprintf(stderr, "usage: ioacct-count OP:TRACKER:UNITS... (bad `%s`)\n", argv[i]);
            return 2;
        }
        failed |= run_case(strcmp(op, "map") == 0, t, units);
    }
    return failed;
}
