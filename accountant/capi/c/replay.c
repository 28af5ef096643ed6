/*
 * ioacct-replay TRACE [--tracker NAME] [--page-limit N]: SPEC section 3's
 * trace replay through libioacct's C API, printing what `cargo xtask replay`
 * prints, with the same exit statuses (0 replayed, 1 stdout could not be
 * written, 2 a malformed line, an over-long line or an unreadable file, with
 * the line number on stderr). Also 3: the lock-free checker disagreed with
 * the locked access check, which is a bug.
 *
 * The library parses each line (ioacct_trace_parse: the accountant's own
 * parser); this program dispatches every op to the public calls (grant,
 * revoke, map, bind, destroy with teardown callbacks, query, check, and
 * access through a checker bound to the domain) and formats the output
 * lines from their results.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hooks.h"
#include "ioacct.h"

#define MAX_DOMID 32751

struct text {
    char *p;
    size_t len, cap;
};

static void text_grow(struct text *t, size_t need)
{
    if (t->len + need + 1 <= t->cap)
        return;
    size_t cap = t->cap ? t->cap : 256;
    while (cap < t->len + need + 1)
        cap *= 2;
    char *p = realloc(t->p, cap);
    if (p == NULL) {
        fprintf(stderr, "ioacct-replay: out of memory\n");
        exit(2);
    }
    t->p = p;
    t->cap = cap;
}

static void text_printf(struct text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    text_grow(t, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

static const char *space_name(uint32_t s)
{
    switch (s) {
    case IOACCT_IOPORT: return "ioport";
    case IOACCT_IOMEM: return "iomem";
    case IOACCT_IRQ: return "irq";
    default: return "?";
    }
}

/* Everything the run owns, global so that every exit path can free it. */
static struct ioacct *acct;
static struct ioacct_trace_parser *parser;
static struct ioacct_port_checker *checkers[MAX_DOMID + 1];
static struct text out_line, torn, line;
static FILE *input;

static void cleanup(void)
{
    for (size_t d = 0; d <= MAX_DOMID; d++) {
        ioacct_checker_release(checkers[d]);
        checkers[d] = NULL;
    }
    ioacct_free(acct);
    acct = NULL;
    ioacct_trace_parser_free(parser);
    parser = NULL;
    free(out_line.p);
    free(torn.p);
    free(line.p);
    out_line = torn = line = (struct text){0};
    if (input != NULL)
        fclose(input);
    input = NULL;
}

static int finish_stdout(void)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        if (errno == EPIPE)
            return 0;
        fprintf(stderr, "ioacct-replay: writing the output: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

static void fail_line(const char *file, size_t n, const char *msg)
{
    int rc = finish_stdout();
    fprintf(stderr, "%s:%zu: %s\n", file, n, msg);
    cleanup();
    exit(rc ? rc : 2);
}

/* The teardown callback: a hypervisor unmaps here; the replay records the
 * item for the output line, in the order the library reports them. */
static void on_teardown(void *ctx, const struct ioacct_teardown_item *it)
{
    struct text *t = ctx;
    text_printf(t, "%s%s%u %s 0x%llx-0x%llx x%u", t->len == 0 ? "torn down: " : ", ", "d",
                (unsigned)it->dom, space_name(it->space), (unsigned long long)it->first,
                (unsigned long long)it->last, (unsigned)it->count);
}

static void ok_with_teardown(void)
{
    if (torn.len == 0)
        text_printf(&out_line, "ok");
    else
        text_printf(&out_line, "ok %.*s", (int)torn.len, torn.p);
}

static void err_line(int rc)
{
    size_t n = ioacct_last_error(acct, NULL, 0);
    if (n == 0) {
        text_printf(&out_line, "err %s", ioacct_strerror(rc));
        return;
    }
    text_grow(&out_line, n + 4);
    text_printf(&out_line, "err ");
    ioacct_last_error(acct, out_line.p + out_line.len, n + 1);
    out_line.len += n;
}

static void access_op(const struct ioacct_op *op, const char *file, size_t lineno)
{
    int rc = ioacct_access(acct, op->dom, op->first, op->width);
    if (rc < 0) {
        err_line(rc);
        return;
    }
    /* rc >= 0: the domain exists, the port is <= 0xffff, the width 1, 2 or 4. */
    struct ioacct_port_checker **c = &checkers[op->dom];
    if (*c == NULL) {
        int b = ioacct_checker_bind(acct, op->dom, c);
        if (b < 0) {
            fprintf(stderr, "ioacct-replay: binding a checker to d%llu: %s\n",
                    (unsigned long long)op->dom, ioacct_strerror(b));
            cleanup();
            exit(3);
        }
    }
    bool allowed = ioacct_port_check(*c, (uint16_t)op->first, (uint8_t)op->width);
    if ((int)allowed != rc) {
        finish_stdout();
        fprintf(stderr, "%s:%zu: the bound checker says %d, the locked check %d\n", file, lineno,
                (int)allowed, rc);
        cleanup();
        exit(3);
    }
    text_printf(&out_line, allowed ? "allow" : "deny");
}

static void query_op(const struct ioacct_op *op)
{
    struct ioacct_unit_info info;
    int rc = ioacct_query(acct, op->space, op->first, &info);
    if (rc < 0) {
        err_line(rc);
        return;
    }
    ptrdiff_t n = ioacct_describe(acct, op->space, op->first, NULL, 0);
    if (n < 0) {
        err_line((int)n);
        return;
    }
    text_grow(&out_line, (size_t)n + 6);
    text_printf(&out_line, "state ");
    ioacct_describe(acct, op->space, op->first, out_line.p + out_line.len, (size_t)n + 1);
    out_line.len += (size_t)n;
}

/* The calls on a range of the hypervisor's own, and a domain's uses, by op kind. */
static int (*const hv_ops[])(struct ioacct *, uint32_t, uint64_t, uint64_t) = {
    [IOACCT_OP_RESERVE] = ioacct_reserve,
    [IOACCT_OP_UNRESERVE] = ioacct_unreserve,
    [IOACCT_OP_HVMAP] = ioacct_hvmap,
    [IOACCT_OP_HVUNMAP] = ioacct_hvunmap,
};
static int (*const use_ops[])(struct ioacct *, uint64_t, uint64_t, uint64_t) = {
    [IOACCT_OP_MAP] = ioacct_map,
    [IOACCT_OP_UNMAP] = ioacct_unmap,
    [IOACCT_OP_BIND] = ioacct_bind,
    [IOACCT_OP_UNBIND] = ioacct_unbind,
};

static void run_op(const struct ioacct_op *op, const char *file, size_t lineno)
{
    int rc = 0;
    out_line.len = 0;
    torn.len = 0;
    if (op->precheck != 0) {
        size_t n = ioacct_trace_message(parser, NULL, 0);
        text_grow(&out_line, n + 4);
        text_printf(&out_line, "err ");
        ioacct_trace_message(parser, out_line.p + out_line.len, n + 1);
        out_line.len += n;
        return;
    }
    switch (op->kind) {
    case IOACCT_OP_CREATE:
        rc = ioacct_domain_create(acct, op->dom);
        break;
    case IOACCT_OP_DESTROY:
        /* The domain's vCPUs are stopped: release its checker first. */
        if (op->dom <= MAX_DOMID) {
            ioacct_checker_release(checkers[op->dom]);
            checkers[op->dom] = NULL;
        }
        rc = ioacct_domain_destroy(acct, op->dom, on_teardown, &torn);
        break;
    case IOACCT_OP_RESERVE:
    case IOACCT_OP_UNRESERVE:
    case IOACCT_OP_HVMAP:
    case IOACCT_OP_HVUNMAP:
        rc = hv_ops[op->kind](acct, op->space, op->first, op->last);
        break;
    case IOACCT_OP_GRANT:
    case IOACCT_OP_REVOKE: {
        int (*f)(struct ioacct *, uint64_t, uint32_t, uint64_t, uint64_t, uint32_t,
                 ioacct_teardown_fn, void *) =
            op->kind == IOACCT_OP_GRANT ? ioacct_grant : ioacct_revoke;
        rc = f(acct, op->dom, op->space, op->first, op->last, op->flags, on_teardown, &torn);
        break;
    }
    case IOACCT_OP_MAP:
    case IOACCT_OP_UNMAP:
    case IOACCT_OP_BIND:
    case IOACCT_OP_UNBIND:
        rc = use_ops[op->kind](acct, op->dom, op->first, op->last);
        break;
    case IOACCT_OP_ACCESS:
        access_op(op, file, lineno);
        return;
    case IOACCT_OP_QUERY:
        query_op(op);
        return;
    case IOACCT_OP_CHECK:
        rc = ioacct_check(acct);
        break;
    default:
        fail_line(file, lineno, "unknown op kind from the parser");
    }
    if (rc < 0)
        err_line(rc);
    else if (rc == IOACCT_PENDING)
        text_printf(&out_line, "pending");
    else
        ok_with_teardown();
}

static void usage(void)
{
    fprintf(stderr, "usage: ioacct-replay FILE [--tracker slab-extent|slab-page|xmalloc-page] "
                    "[--page-limit N]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *file = NULL;
    struct ioacct_config cfg = {.tracker = IOACCT_TRACKER_SLAB_EXTENT,
                                .page_limit = IOACCT_NO_PAGE_LIMIT};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tracker") == 0 && i + 1 < argc) {
            if (hooks_tracker_of(argv[++i], &cfg.tracker) != 0)
                usage();
        } else if (strcmp(argv[i], "--page-limit") == 0 && i + 1 < argc) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(argv[++i], &end, 10);
            if (errno != 0 || *end != '\0' || end == argv[i])
                usage();
            cfg.page_limit = v;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            usage();
        } else if (file == NULL) {
            file = argv[i];
        } else {
            usage();
        }
    }
    if (file == NULL)
        usage();
    signal(SIGPIPE, SIG_IGN);
    input = fopen(file, "rb");
    if (input == NULL) {
        fprintf(stderr, "ioacct-replay: %s: %s\n", file, strerror(errno));
        return 2;
    }
    int rc = ioacct_init(&hooks);
    if (rc == IOACCT_OK)
        rc = ioacct_trace_parser_new(&parser);
    if (rc != IOACCT_OK) {
        fprintf(stderr, "ioacct-replay: %s\n", ioacct_strerror(rc));
        cleanup();
        return 2;
    }
    size_t lineno = 0;
    for (;;) {
        /* One line, as the Rust LineReader splits them: at '\n', a '\r'
         * before it dropped, a last line without '\n' kept, at most
         * IOACCT_TRACE_MAX_LINE bytes. */
        line.len = 0;
        int c = EOF;
        bool newline = false;
        while ((c = getc(input)) != EOF) {
            if (c == '\n') {
                newline = true;
                break;
            }
            if (line.len == IOACCT_TRACE_MAX_LINE) {
                char msg[160];
                text_grow(&line, 0);
                snprintf(msg, sizeof msg, "line longer than %d bytes", IOACCT_TRACE_MAX_LINE);
                fail_line(file, lineno + 1, msg);
            }
            text_grow(&line, 1);
            line.p[line.len++] = (char)c;
        }
        if (ferror(input)) {
            finish_stdout();
            fprintf(stderr, "ioacct-replay: %s: read error\n", file);
            cleanup();
            return 2;
        }
        if (!newline && line.len == 0)
            break;
        lineno++;
        if (newline && line.len > 0 && line.p[line.len - 1] == '\r')
            line.len--;
        struct ioacct_op op;
        int p = ioacct_trace_parse(parser, (const uint8_t *)line.p, line.len, &op);
        if (p == 0)
            continue;
        if (p < 0) {
            size_t n = ioacct_trace_message(parser, NULL, 0);
            char *msg = malloc(n + 1);
            if (msg != NULL)
                ioacct_trace_message(parser, msg, n + 1);
            finish_stdout();
            fprintf(stderr, "%s:%zu: %s\n", file, lineno, msg ? msg : ioacct_strerror(p));
            free(msg);
            cleanup();
            return 2;
        }
        if (acct == NULL) {
            if (op.kind != IOACCT_OP_BOOT)
                fail_line(file, lineno, "the first op must be `boot`");
            int b = ioacct_boot(op.boot_options, op.boot_options_len, &cfg, &acct);
            if (b != IOACCT_OK)
                fail_line(file, lineno, ioacct_strerror(b));
            if (puts("ok") == EOF)
                break;
            continue;
        }
        if (op.kind == IOACCT_OP_BOOT)
            fail_line(file, lineno, "`boot` only as the first op");
        run_op(&op, file, lineno);
        if (fwrite(out_line.p, 1, out_line.len, stdout) != out_line.len || putchar('\n') == EOF)
            break;
    }
    rc = finish_stdout();
    cleanup();
    return rc;
}
