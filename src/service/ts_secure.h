/*
 * ts_secure.h - process hardening and the one way to release user content.
 *
 * User content (prompts, pixels, upload bytes, face descriptors) must be
 * zeroed before its memory goes back to the allocator (POLICY.md P1, P2, P13),
 * and the process must never write its memory to a core file (P4: the keys
 * of the ephemeral store live only in memory).
 *
 *     ts_error err;
 *     if (ts_secure_disable_core_dumps(&err) != TS_OK)   // at start of `serve`
 *         ...warn: err.message...
 *     char *prompt = ts_secure_strndup(body_prompt, limit);
 *     ...
 *     ts_secure_free_string(prompt);                     // zeroed, then freed
 *
 * Ownership: the free functions take ownership of what they are given.
 * Thread safety: all functions are thread-safe.
 */
#ifndef TS_SECURE_H
#define TS_SECURE_H

#include <stddef.h>

#include "ts_error.h"

/* Sets RLIMIT_CORE to 0 and marks the process non-dumpable (PR_SET_DUMPABLE
 * 0), so neither a crash nor ptrace by another user can read memory that
 * holds store keys or user content. Returns TS_ERR_IO (with the reason) when
 * the operating system refuses; the caller decides whether to go on. */
ts_status ts_secure_disable_core_dumps(ts_error *err);

/* 1 when core dumps are off (RLIMIT_CORE soft limit 0 and not dumpable). */
int ts_secure_core_dumps_disabled(void);

/* Zeroes n bytes in a way the compiler cannot elide (sodium_memzero). */
void ts_secure_wipe(void *p, size_t n);

/* Zeroes n bytes at p, then frees p (malloc'd). NULL is fine. */
void ts_secure_free(void *p, size_t n);

/* Grows a malloc'd buffer of cap bytes (len of them in use, len <= new_cap)
 * to new_cap bytes by copy, so the old block can be zeroed before it is
 * freed (realloc could leave a copy of user content behind in freed memory).
 * Returns the new buffer, p having been zeroed and freed; NULL when
 * allocation failed, p then untouched and still the caller's. p may be NULL.
 * Does not call the free hook. */
void *ts_secure_regrow(void *p, size_t len, size_t cap, size_t new_cap);

/* Zeroes a NUL-terminated malloc'd string (its whole length), then frees it. */
void ts_secure_free_string(char *s);

/* A malloc'd copy of at most max_bytes of s (always NUL-terminated), or NULL
 * when s is NULL or allocation failed. Release with ts_secure_free_string. */
char *ts_secure_strndup(const char *s, size_t max_bytes);

/* Test hook: when set, ts_secure_free and ts_secure_free_string call it with
 * the buffer AFTER zeroing and BEFORE freeing, so a test can verify that the
 * memory really is zero. NULL removes it. Never set in production. */
typedef void (*ts_secure_free_hook_fn)(void *user, const void *p, size_t n);
void ts_secure_set_free_hook(ts_secure_free_hook_fn hook, void *user);

#endif
