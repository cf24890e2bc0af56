/*
 * fuzz_client_addr.c - how the rate limiter reads who a client is: the peer
 * address as text and the X-Forwarded-For header, both hostile (any client
 * can send any header; a trusted proxy passes it on). Input: the first line
 * is the peer, the rest the header. The same bytes are also read as a
 * trusted-proxies CIDR list. The limiter is created once, trusting loopback
 * and 10.0.0.0/8, so the header is believed for some peers and not others.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ts_ratelimit.h"

static ts_ratelimit *rl;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ts_ratelimit_options o;
    ts_ratelimit_options_default(&o);
    o.max_clients = 64; /* small, so eviction runs too */
    o.trusted_proxies = "127.0.0.0/8,10.0.0.0/8,::1/128";
    ts_error err;
    if (ts_ratelimit_create(&o, &rl, &err) != TS_OK)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    if (!rl)
        LLVMFuzzerInitialize(NULL, NULL);
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    ts_error err;
    ts_ratelimit_check_cidrs(text, &err);

    char *nl = strchr(text, '\n');
    const char *xff = NULL;
    if (nl) {
        *nl = '\0';
        xff = nl + 1;
    }
    ts_client_id who;
    if (ts_ratelimit_identify_text(rl, text, xff, &who) == TS_OK) {
        ts_ratelimit_decision d;
        ts_ratelimit_take(rl, &who, (int)(size & 1), 1.0, &d);
        if (ts_ratelimit_conn_enter(rl, &who))
            ts_ratelimit_conn_leave(rl, &who);
    }
    free(text);
    return 0;
}
