/*
 * ddns.h - dynamic DNS: a thread that keeps DuckDNS names pointed at the
 * address this network reaches the Internet from (ddns.duckdns in the
 * config).
 *
 * Schedule: one update when the thread starts, then one every `every`.
 * After a failure the next attempt comes after 1, 2, 5, 10, 20, then every
 * 30 minutes (consecutive failures), but never later than `every`: the
 * wait is min(step, every). So with the default every: 5m the retries come
 * after 1, 2, 5, 5, ... minutes, and a config with every: 1s retries each
 * second (how the tests watch the schedule). The first success after a
 * failure returns to the normal interval.
 *
 * Logs (never the token): info on the first success ("ddns: example
 * points at 192.0.2.1"), whenever DuckDNS reports UPDATED ("ddns: example
 * now points at 192.0.2.1"), and when an update works again after
 * failures; error on each failure, with when the next attempt comes.
 *
 * Ownership: one struct ddns per daemon, owned by the control thread
 * (cli_run.c), which alone calls start, reconfigure and stop. ddns_status
 * may be called from any thread.
 */
#ifndef MOAT_DDNS_H
#define MOAT_DDNS_H

#include <jansson.h>
#include <stdint.h>

struct conf_ddns;
struct ddns;

/*
 * Start the updater for d when d->on; returns NULL (nothing started) when
 * off, or after logging why the thread could not be created. Everything
 * needed is copied: d may be freed afterwards. The first update is made at
 * once, on the new thread. Control thread.
 */
struct ddns *ddns_start(const struct conf_ddns *d);

/*
 * Apply a reloaded configuration: with unchanged settings the running
 * updater goes on untouched (its schedule and status survive); with
 * changed settings it is stopped and a new one started (which updates at
 * once); d->on false stops it (*dp becomes NULL); a NULL *dp is started.
 * Control thread; may block for as long as ddns_stop.
 */
void ddns_reconfigure(struct ddns **dp, const struct conf_ddns *d);

/*
 * Stop the thread (waking it at once; a request in flight is abandoned
 * within moments), join it, wipe the token and free. NULL is a no-op.
 * Control thread.
 */
void ddns_stop(struct ddns *g);

/*
 * For `moat status`: a new object (caller owns the reference; never NULL):
 *   {"on": true, "domains": [...], "every": seconds,
 *    "ok": the last attempt succeeded (null before the first),
 *    "last_attempt", "last_success", "next_attempt": Unix seconds or null,
 *    "ipv4", "ipv6": what DuckDNS last reported ("" when none),
 *    "failures": consecutive failed attempts,
 *    "last_error": the newest failure's message or null,
 *    "last_error_at": Unix seconds or null}
 * g NULL: {"on": false}. Never contains the token. Any thread.
 */
json_t *ddns_status(struct ddns *g);

/*
 * The wait (ms) before the next attempt after `failures` consecutive
 * failures (0: after a success, every_ms): min(1, 2, 5, 10, 20, 30 min
 * (the last repeating), every_ms). Pure; exported for tests.
 */
uint64_t ddns_retry_ms(unsigned failures, uint32_t every_ms);

#endif
