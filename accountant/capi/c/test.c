/*
 * ioacct-test: libioacct from C. The seed scenario's decisions (SPEC's
 * spec/conformance/seed-scenario.trace, through the C calls), the teardown
 * callback (its unmaps happen inside the forced grant, forced revoke and
 * destroy, before they return), Xen's iocap shape, the lock-free checker
 * while another thread revokes, and bad arguments (NULL and foreign
 * handles, inverted ranges, huge numbers, bad enumerations), which must
 * return errors and change nothing. Exit 0 when every check holds.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hooks.h"
#include "ioacct.h"

static int failures;

#define EXPECT(cond)                                                                          \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                       \
        }                                                                                     \
    } while (0)

#define EXPECT_RC(call, want)                                                                 \
    do {                                                                                      \
        int rc_ = (call);                                                                     \
        if (rc_ != (want)) {                                                                  \
            fprintf(stderr, "%s:%d: %s returned %d (%s), expected %d (%s)\n", __FILE__,       \
                    __LINE__, #call, rc_, ioacct_strerror(rc_), (int)(want),                  \
                    ioacct_strerror(want));                                                   \
            failures++;                                                                       \
        }                                                                                     \
    } while (0)

/* A stand-in for a guest's second-stage page table: which frames each
 * domain has mapped. The teardown callback removes entries from it. */
#define FRAMES 64
#define BASE_MFN 0xfeb00
static bool mapped[4][FRAMES];
static bool bound[4][32];
static int in_call;          /* 1 while a library call that may tear down runs */
static int torn_outside;     /* callbacks that ran outside such a call */
static int torn_items;

static void guest_map(int dom, uint64_t mfn) { mapped[dom][mfn - BASE_MFN] = true; }

static void on_teardown(void *ctx, const struct ioacct_teardown_item *it)
{
    (void)ctx;
    if (!in_call)
        torn_outside++;
    torn_items++;
    for (uint64_t u = it->first; u <= it->last; u++) {
        if (it->space == IOACCT_IOMEM && u >= BASE_MFN && u < BASE_MFN + FRAMES)
            mapped[it->dom][u - BASE_MFN] = false; /* unmap + TLB flush, for real */
        if (it->space == IOACCT_IRQ && u < 32)
            bound[it->dom][u] = false; /* stop delivering the line */
    }
}

static const char boot_line[] =
    "ram=0x0-0x7ffff reserve_iomem=0xfec00,0xfee00 reserve_ioports=0x3f8-0x3ff reserve_irqs=2";

static struct ioacct *boot(void)
{
    struct ioacct *a = NULL;
    EXPECT_RC(ioacct_boot(boot_line, strlen(boot_line), NULL, &a), IOACCT_OK);
    return a;
}

static void seed_scenario(void)
{
    struct ioacct *a = boot();
    const uint64_t M = 0xfeb00;
    /* dom0 maps page M, binds line 11 and talks on P by default right */
    EXPECT_RC(ioacct_map(a, 0, M, M), IOACCT_OK);
    guest_map(0, M);
    EXPECT_RC(ioacct_bind(a, 0, 11, 11), IOACCT_OK);
    bound[0][11] = true;
    EXPECT_RC(ioacct_access(a, 0, 0x300, 1), 1);
    EXPECT_RC(ioacct_domain_create(a, 1), IOACCT_OK);
    struct ioacct_port_checker *c0 = NULL, *c1 = NULL;
    EXPECT_RC(ioacct_checker_bind(a, 0, &c0), IOACCT_OK);
    EXPECT_RC(ioacct_checker_bind(a, 1, &c1), IOACCT_OK);
    EXPECT(ioacct_port_check(c0, 0x300, 1));
    /* handing M to a driver domain while dom0 maps it is refused */
    EXPECT_RC(ioacct_grant(a, 1, IOACCT_IOMEM, M, M, 0, on_teardown, NULL), IOACCT_ERR_IN_USE);
    EXPECT_RC(ioacct_grant(a, 1, IOACCT_IRQ, 11, 11, 0, on_teardown, NULL), IOACCT_ERR_IN_USE);
    EXPECT(torn_items == 0);
    /* ports: the grant takes effect at once, in the lock-free check too */
    EXPECT_RC(ioacct_grant(a, 1, IOACCT_IOPORT, 0x300, 0x307, 0, on_teardown, NULL), IOACCT_OK);
    EXPECT(!ioacct_port_check(c0, 0x300, 1));
    EXPECT(ioacct_port_check(c1, 0x300, 2));
    EXPECT(!ioacct_port_check(c1, 0x306, 4));
    EXPECT_RC(ioacct_access(a, 1, 0x306, 4), 0);
    /* forced: dom0's mapping is torn down inside the call */
    in_call = 1;
    EXPECT_RC(ioacct_grant(a, 1, IOACCT_IOMEM, M, M, IOACCT_FORCE, on_teardown, NULL), IOACCT_OK);
    in_call = 0;
    EXPECT(torn_items == 1);
    EXPECT(!mapped[0][0]);
    EXPECT_RC(ioacct_unmap(a, 0, M, M), IOACCT_ERR_NOT_MAPPED);
    EXPECT_RC(ioacct_map(a, 0, M, M), IOACCT_ERR_NOT_GRANTED);
    EXPECT_RC(ioacct_map(a, 1, M, M), IOACCT_OK);
    guest_map(1, M);
    EXPECT_RC(ioacct_unbind(a, 0, 11, 11), IOACCT_OK);
    bound[0][11] = false;
    EXPECT_RC(ioacct_grant(a, 1, IOACCT_IRQ, 11, 11, 0, on_teardown, NULL), IOACCT_OK);
    EXPECT_RC(ioacct_bind(a, 1, 11, 11), IOACCT_OK);
    bound[1][11] = true;
    /* the hypervisor's own devices cannot be handed out */
    EXPECT_RC(ioacct_grant(a, 0, IOACCT_IOMEM, 0xfee00, 0xfee00, 0, NULL, NULL),
              IOACCT_ERR_RESERVED);
    EXPECT_RC(ioacct_grant(a, 1, IOACCT_IOPORT, 0x3f8, 0x3f8, 0, NULL, NULL),
              IOACCT_ERR_RESERVED);
    EXPECT(!ioacct_port_check(c0, 0x3f8, 1));
    EXPECT_RC(ioacct_map(a, 0, 0xfec00, 0xfec00), IOACCT_ERR_RESERVED);
    EXPECT_RC(ioacct_bind(a, 0, 2, 2), IOACCT_ERR_RESERVED);
    /* the driver domain dies: its vCPUs stopped, its checker released,
     * then destroy tears its mapping and binding down inside the call */
    EXPECT_RC(ioacct_checker_release(c1), IOACCT_OK);
    in_call = 1;
    EXPECT_RC(ioacct_domain_destroy(a, 1, on_teardown, NULL), IOACCT_OK);
    in_call = 0;
    EXPECT(!mapped[1][0]);
    EXPECT(!bound[1][11]);
    EXPECT(torn_items == 3);
    EXPECT(ioacct_port_check(c0, 0x300, 1));
    EXPECT_RC(ioacct_map(a, 0, M, M), IOACCT_OK);
    EXPECT_RC(ioacct_check(a), IOACCT_OK);
    EXPECT(torn_outside == 0);
    EXPECT_RC(ioacct_checker_release(c0), IOACCT_OK);
    EXPECT_RC(ioacct_free(a), IOACCT_OK);
}

/* A forced revoke returns only after the callback unmapped every frame: a
 * guest access after it returns faults instead of reaching the device. */
static void forced_revoke_unmaps_before_returning(void)
{
    struct ioacct *a = boot();
    EXPECT_RC(ioacct_domain_create(a, 2), IOACCT_OK);
    EXPECT_RC(ioacct_grant(a, 2, IOACCT_IOMEM, BASE_MFN, BASE_MFN + 15, 0, NULL, NULL),
              IOACCT_OK);
    for (uint64_t m = BASE_MFN; m < BASE_MFN + 16; m++) {
        EXPECT_RC(ioacct_map(a, 2, m, m), IOACCT_OK);
        guest_map(2, m);
    }
    EXPECT_RC(ioacct_map(a, 2, BASE_MFN + 3, BASE_MFN + 4), IOACCT_OK); /* a second mapping */
    /* without force: pending, nothing torn down, the frames drain */
    int before = torn_items;
    EXPECT_RC(ioacct_revoke(a, 2, IOACCT_IOMEM, BASE_MFN, BASE_MFN + 7, 0, on_teardown, NULL),
              IOACCT_PENDING);
    EXPECT(torn_items == before);
    EXPECT(mapped[2][0]);
    EXPECT_RC(ioacct_map(a, 2, BASE_MFN, BASE_MFN), IOACCT_ERR_DRAINING);
    EXPECT_RC(ioacct_iomem_access_permitted(a, 2, BASE_MFN, BASE_MFN), 0);
    /* forced: every live mapping is gone when the call returns */
    in_call = 1;
    EXPECT_RC(ioacct_revoke(a, 2, IOACCT_IOMEM, BASE_MFN + 8, BASE_MFN + 15, IOACCT_FORCE,
                            on_teardown, NULL),
              IOACCT_OK);
    in_call = 0;
    for (int i = 8; i < 16; i++)
        EXPECT(!mapped[2][i]);
    EXPECT(torn_items > before);
    struct ioacct_unit_info info;
    EXPECT_RC(ioacct_query(a, IOACCT_IOMEM, BASE_MFN + 9, &info), IOACCT_OK);
    EXPECT(info.users == 0 && info.holders == 0 && info.uses == 0);
    EXPECT_RC(ioacct_query(a, IOACCT_IOMEM, BASE_MFN + 3, &info), IOACCT_OK);
    EXPECT(info.draining == 1 && info.uses == 2 && info.holders == 0);
    /* the drain ends with the last unmap */
    EXPECT_RC(ioacct_unmap(a, 2, BASE_MFN, BASE_MFN + 7), IOACCT_OK);
    EXPECT_RC(ioacct_unmap(a, 2, BASE_MFN + 3, BASE_MFN + 4), IOACCT_OK);
    EXPECT_RC(ioacct_query(a, IOACCT_IOMEM, BASE_MFN + 3, &info), IOACCT_OK);
    EXPECT(info.draining == 0 && info.default_accessible);
    EXPECT(torn_outside == 0);
    EXPECT_RC(ioacct_check(a), IOACCT_OK);
    EXPECT_RC(ioacct_free(a), IOACCT_OK);
}

/* Xen's iocap.h, line by line. */
static void xen_shape(void)
{
    struct ioacct *a = NULL;
    const char opts[] = "io_default=none";
    EXPECT_RC(ioacct_boot(opts, strlen(opts), NULL, &a), IOACCT_OK);
    EXPECT_RC(ioacct_domain_create(a, 3), IOACCT_OK);
    EXPECT_RC(ioacct_iomem_access_permitted(a, 3, 0xe0000, 0xe00ff), 0);
    EXPECT_RC(ioacct_iomem_permit(a, 3, 0xe0000, 0xe00ff), IOACCT_OK);
    EXPECT_RC(ioacct_iomem_access_permitted(a, 3, 0xe0000, 0xe00ff), 1);
    EXPECT_RC(ioacct_iomem_access_permitted(a, 3, 0xe0000, 0xe0100), 0);
    EXPECT_RC(ioacct_iomem_permit(a, 0, 0xe0080, 0xe0080), IOACCT_ERR_CONFLICT);
    EXPECT_RC(ioacct_iomem_deny(a, 3, 0xe0000, 0xe00ff), IOACCT_OK);
    EXPECT_RC(ioacct_iomem_access_permitted(a, 3, 0xe0000, 0xe0000), 0);
    EXPECT_RC(ioacct_iomem_deny(a, 3, 0xe0000, 0xe0000), IOACCT_ERR_NOT_GRANTED);
    EXPECT_RC(ioacct_ioports_permit(a, 3, 0x60, 0x64), IOACCT_OK);
    EXPECT_RC(ioacct_ioports_access_permitted(a, 3, 0x60, 0x64), 1);
    EXPECT_RC(ioacct_ioports_access_permitted(a, 0, 0x60, 0x60), 0);
    EXPECT_RC(ioacct_ioports_deny(a, 3, 0x60, 0x64), IOACCT_OK);
    EXPECT_RC(ioacct_irqs_permit(a, 3, 9, 9), IOACCT_OK); /* irq_permit_access(d, 9) */
    EXPECT_RC(ioacct_irqs_access_permitted(a, 3, 9, 9), 1);
    EXPECT_RC(ioacct_bind(a, 3, 9, 9), IOACCT_OK);
    EXPECT_RC(ioacct_irqs_deny(a, 3, 9, 9), IOACCT_PENDING); /* still bound: drains */
    EXPECT_RC(ioacct_unbind(a, 3, 9, 9), IOACCT_OK);
    EXPECT_RC(ioacct_irqs_access_permitted(a, 3, 9, 9), 0);
    /* shared, as Xen permits one range to two domains */
    EXPECT_RC(ioacct_domain_create(a, 4), IOACCT_OK);
    EXPECT_RC(ioacct_grant(a, 3, IOACCT_IOMEM, 0xd0000, 0xd0003, IOACCT_GRANT_SHARED, NULL, NULL),
              IOACCT_OK);
    EXPECT_RC(ioacct_grant(a, 4, IOACCT_IOMEM, 0xd0000, 0xd0003, IOACCT_GRANT_SHARED, NULL, NULL),
              IOACCT_OK);
    EXPECT_RC(ioacct_grant(a, 4, IOACCT_IOMEM, 0xd0000, 0xd0000, 0, NULL, NULL),
              IOACCT_ERR_CONFLICT);
    char text[128];
    ptrdiff_t n = ioacct_describe(a, IOACCT_IOMEM, 0xd0000, text, sizeof text);
    EXPECT(n > 0 && strstr(text, "held-by d3 shared") && strstr(text, "held-by d4 shared"));
    EXPECT_RC(ioacct_check(a), IOACCT_OK);
    EXPECT_RC(ioacct_free(a), IOACCT_OK);
}

/* Bad arguments: an error each, nothing aborts, nothing changes. */
static void bad_arguments(void)
{
    struct ioacct *a = boot();
    EXPECT_RC(ioacct_domain_create(NULL, 1), IOACCT_ERR_BAD_HANDLE);
    uint64_t foreign[16] = {0};
    EXPECT_RC(ioacct_domain_create((struct ioacct *)foreign, 1), IOACCT_ERR_BAD_HANDLE);
    EXPECT_RC(ioacct_free((struct ioacct *)foreign), IOACCT_ERR_BAD_HANDLE);
    EXPECT_RC(ioacct_free(NULL), IOACCT_OK);
    EXPECT_RC(ioacct_domain_create(a, 1), IOACCT_OK);
    EXPECT_RC(ioacct_domain_create(a, 1), IOACCT_ERR_DOMAIN_EXISTS);
    EXPECT_RC(ioacct_domain_create(a, 32752), IOACCT_ERR_OUT_OF_RANGE);
    EXPECT_RC(ioacct_domain_create(a, UINT64_MAX), IOACCT_ERR_OUT_OF_RANGE);
    EXPECT_RC(ioacct_domain_destroy(a, 0, NULL, NULL), IOACCT_ERR_NOT_PERMITTED);
    EXPECT_RC(ioacct_grant(a, 1, IOACCT_IOPORT, 0x10, 0x5, 0, NULL, NULL), IOACCT_ERR_BAD_RANGE);
    EXPECT_RC(ioacct_grant(a, 1, IOACCT_IOPORT, 0x10, UINT64_MAX, 0, NULL, NULL),
              IOACCT_ERR_OUT_OF_RANGE);
    EXPECT_RC(ioacct_grant(a, 1, IOACCT_IRQ, 1024, 1024, 0, NULL, NULL), IOACCT_ERR_OUT_OF_RANGE);
    EXPECT_RC(ioacct_grant(a, 1, 7, 1, 1, 0, NULL, NULL), IOACCT_ERR_BAD_ARGUMENT);
    EXPECT_RC(ioacct_grant(a, 1, IOACCT_IOPORT, 1, 1, 0x80, NULL, NULL), IOACCT_ERR_BAD_ARGUMENT);
    EXPECT_RC(ioacct_grant(a, 9, IOACCT_IOPORT, 1, 1, 0, NULL, NULL), IOACCT_ERR_NO_SUCH_DOMAIN);
    EXPECT_RC(ioacct_grant(a, 1, IOACCT_IOMEM, 0x10, 0x10, 0, NULL, NULL),
              IOACCT_ERR_NOT_IO_MEMORY);
    EXPECT_RC(ioacct_map(a, 1, 0xff00000000ULL, 0xffffffffffULL), IOACCT_ERR_NOT_GRANTED);
    EXPECT_RC(ioacct_map(a, 1, 0, UINT64_MAX), IOACCT_ERR_OUT_OF_RANGE);
    EXPECT_RC(ioacct_access(a, 1, 0x10, 3), IOACCT_ERR_BAD_RANGE);
    EXPECT_RC(ioacct_access(a, 1, 0x10000, 1), IOACCT_ERR_OUT_OF_RANGE);
    EXPECT_RC(ioacct_access(a, 1, 0xffff, 2), 0);
    EXPECT_RC(ioacct_query(a, IOACCT_IRQ, 3, NULL), IOACCT_ERR_NULL);
    EXPECT_RC(ioacct_checker_bind(a, 1, NULL), IOACCT_ERR_NULL);
    EXPECT_RC(ioacct_checker_bind(a, 7, (struct ioacct_port_checker **)foreign),
              IOACCT_ERR_NO_SUCH_DOMAIN);
    EXPECT(!ioacct_port_check(NULL, 0x300, 1));
    EXPECT(!ioacct_port_check((struct ioacct_port_checker *)foreign, 0x300, 1));
    EXPECT_RC(ioacct_checker_release((struct ioacct_port_checker *)foreign), IOACCT_ERR_BAD_HANDLE);
    struct ioacct_port_checker *c = NULL;
    EXPECT_RC(ioacct_checker_bind(a, 0, &c), IOACCT_OK);
    EXPECT(ioacct_port_check(c, 0x300, 1));
    EXPECT(!ioacct_port_check(c, 0x300, 3));
    EXPECT(!ioacct_port_check(c, 0xffff, 2));
    /* the per-width checks answer as the generic one, straddling words and
     * the end of the space included, and deny NULL and foreign checkers */
    int allowed = 0, denied = 0;
    for (uint32_t p = 0x3b0; p <= 0x400; p++) {
        bool b1 = ioacct_port_check(c, (uint16_t)p, 1);
        EXPECT(ioacct_port_check8(c, (uint16_t)p) == b1);
        EXPECT(ioacct_port_check16(c, (uint16_t)p) == ioacct_port_check(c, (uint16_t)p, 2));
        EXPECT(ioacct_port_check32(c, (uint16_t)p) == ioacct_port_check(c, (uint16_t)p, 4));
        allowed += b1;
        denied += !b1;
    }
    EXPECT(allowed > 0 && denied > 0);
    EXPECT(ioacct_port_check8(c, 0xffff) == ioacct_port_check(c, 0xffff, 1));
    EXPECT(!ioacct_port_check16(c, 0xffff));
    EXPECT(!ioacct_port_check32(c, 0xfffd));
    EXPECT(!ioacct_port_check8(NULL, 0x300) && !ioacct_port_check16(NULL, 0x300) &&
           !ioacct_port_check32(NULL, 0x300));
    EXPECT(!ioacct_port_check8((struct ioacct_port_checker *)foreign, 0x300));
    EXPECT(!ioacct_port_check32((struct ioacct_port_checker *)foreign, 0x300));
    EXPECT_RC(ioacct_checker_release(c), IOACCT_OK);
    /* the details of the last error, and its name */
    EXPECT_RC(ioacct_grant(a, 1, IOACCT_IOPORT, 0x3f8, 0x3f8, 0, NULL, NULL), IOACCT_ERR_RESERVED);
    char text[64];
    size_t n = ioacct_last_error(a, text, sizeof text);
    EXPECT(n == strlen("reserved at 0x3f8") && strcmp(text, "reserved at 0x3f8") == 0);
    EXPECT(ioacct_last_error(a, text, 4) == n && strcmp(text, "res") == 0);
    EXPECT(strncmp(ioacct_strerror(IOACCT_ERR_QUOTA), "quota", 5) == 0);
    EXPECT(strcmp(ioacct_strerror(-4242), "unknown error") == 0);
    /* nothing changed: every refusal above left the state valid */
    EXPECT_RC(ioacct_check(a), IOACCT_OK);
    EXPECT_RC(ioacct_free(a), IOACCT_OK);
    /* bad boot lines */
    struct ioacct *b = NULL;
    EXPECT_RC(ioacct_boot("frobnicate=1", 12, NULL, &b), IOACCT_ERR_MALFORMED);
    EXPECT_RC(ioacct_boot("reserve_ioports=0x3f8 dom0_ioports=0x3f8", 40, NULL, &b),
              IOACCT_ERR_MALFORMED);
    EXPECT_RC(ioacct_boot("\xff\xfe", 2, NULL, &b), IOACCT_ERR_MALFORMED);
    EXPECT_RC(ioacct_boot(NULL, 3, NULL, &b), IOACCT_ERR_NULL);
    EXPECT_RC(ioacct_boot("", 0, NULL, NULL), IOACCT_ERR_NULL);
    struct ioacct_config bad = {.tracker = 9, .page_limit = IOACCT_NO_PAGE_LIMIT};
    EXPECT_RC(ioacct_boot("", 0, &bad, &b), IOACCT_ERR_BAD_ARGUMENT);
    EXPECT(b == NULL);
}

/* vCPU threads check without a lock while the control thread revokes: once
 * the revoke has returned, no check allows the port. */
static struct ioacct_port_checker *shared_checker;
/* 4k+1 permitting, 4k+2 permitted, 4k+3 denying, 4k+4 denied (returned). */
static atomic_uint_fast64_t generation;
static atomic_int stop, late_allows, checks_in_denied;

static void *vcpu(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        sched_yield();
        uint_fast64_t g1 = atomic_load(&generation);
        bool ok = ioacct_port_check(shared_checker, 0x500, 1);
        uint_fast64_t g2 = atomic_load(&generation);
        /* The whole check ran after a deny returned and before the next
         * permit began: it must deny. */
        if (g1 == g2 && g1 > 0 && g1 % 4 == 0) {
            atomic_fetch_add(&checks_in_denied, 1);
            if (ok)
                atomic_fetch_add(&late_allows, 1);
        }
    }
    return NULL;
}

static void lock_free_check_follows_revoke(void)
{
    struct ioacct *a = boot();
    EXPECT_RC(ioacct_domain_create(a, 1), IOACCT_OK);
    EXPECT_RC(ioacct_checker_bind(a, 1, &shared_checker), IOACCT_OK);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, vcpu, NULL);
    /* IOACCT_TEST_ROUNDS: fewer under valgrind, which runs one thread at a time. */
    const char *env = getenv("IOACCT_TEST_ROUNDS");
    int rounds = env != NULL ? atoi(env) : 2000;
    for (int round = 0; round < rounds; round++) {
        atomic_fetch_add(&generation, 1);
        EXPECT_RC(ioacct_ioports_permit(a, 1, 0x500, 0x507), IOACCT_OK);
        atomic_fetch_add(&generation, 1);
        atomic_fetch_add(&generation, 1);
        EXPECT_RC(ioacct_ioports_deny(a, 1, 0x500, 0x507), IOACCT_OK);
        atomic_fetch_add(&generation, 1);
        /* Hold the denied state until a vCPU checked in it (bounded). */
        int seen = atomic_load(&checks_in_denied);
        for (int spin = 0; spin < 100 && atomic_load(&checks_in_denied) == seen; spin++)
            sched_yield();
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    EXPECT(atomic_load(&late_allows) == 0);
    EXPECT(atomic_load(&checks_in_denied) > 0);
    EXPECT_RC(ioacct_checker_release(shared_checker), IOACCT_OK);
    EXPECT_RC(ioacct_free(a), IOACCT_OK);
}

int main(void)
{
    EXPECT_RC(ioacct_boot("", 0, NULL, NULL), IOACCT_ERR_NO_HOOKS);
    EXPECT_RC(ioacct_init(NULL), IOACCT_ERR_NULL);
    EXPECT_RC(ioacct_init(&hooks), IOACCT_OK);
    EXPECT_RC(ioacct_init(&hooks), IOACCT_OK);
    struct ioacct_hooks other = hooks;
    other.ctx = &other;
    EXPECT_RC(ioacct_init(&other), IOACCT_ERR_ALREADY);
    seed_scenario();
    forced_revoke_unmaps_before_returning();
    xen_shape();
    bad_arguments();
    lock_free_check_follows_revoke();
    /* every block the library allocated went back through the free hook */
    EXPECT(hooks_live_blocks == 0);
    if (failures != 0) {
        fprintf(stderr, "ioacct-test: %d checks failed\n", failures);
        return 1;
    }
    printf("ioacct-test: all checks passed\n");
    return 0;
}
