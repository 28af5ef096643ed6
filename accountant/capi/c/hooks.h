/* The C programs' hooks for libioacct: malloc/free and abort, as a
 * hypervisor would pass xmalloc/xfree/panic. Counts live blocks so that the
 * tests can assert the library returned every one. Also what the programs'
 * command lines share: a tracker's name to its IOACCT_TRACKER_* value. */
#ifndef IOACCT_C_HOOKS_H
#define IOACCT_C_HOOKS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ioacct.h"

static long hooks_live_blocks;

static void *hooks_alloc(void *ctx, size_t size, size_t align)
{
    void *p = NULL;
    (void)ctx;
    if (align <= sizeof(void *) * 2) {
        p = malloc(size);
    } else if (posix_memalign(&p, align, size) != 0) {
        p = NULL;
    }
    if (p != NULL)
        hooks_live_blocks++;
    return p;
}

static void hooks_free(void *ctx, void *ptr, size_t size, size_t align)
{
    (void)ctx;
    (void)size;
    (void)align;
    if (ptr != NULL)
        hooks_live_blocks--;
    free(ptr);
}

static void hooks_fatal(void *ctx, const char *msg, size_t len)
{
    (void)ctx;
    fprintf(stderr, "libioacct fatal: %.*s\n", (int)len, msg);
    abort();
}

static const struct ioacct_hooks hooks = {
    .alloc = hooks_alloc,
    .free = hooks_free,
    .fatal = hooks_fatal,
    .ctx = NULL,
};

/* `slab-extent`, `slab-page` or `xmalloc-page` into *out; -1 for another name. */
static inline int hooks_tracker_of(const char *name, uint32_t *out)
{
    if (strcmp(name, "slab-extent") == 0)
        *out = IOACCT_TRACKER_SLAB_EXTENT;
    else if (strcmp(name, "slab-page") == 0)
        *out = IOACCT_TRACKER_SLAB_PAGE;
    else if (strcmp(name, "xmalloc-page") == 0)
        *out = IOACCT_TRACKER_XMALLOC_PAGE;
    else
        return -1;
    return 0;
}

#endif
