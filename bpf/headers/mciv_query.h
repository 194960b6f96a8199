/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * mciv_query.h: what every database probe shares: the query latency
 * histogram (db_query_seconds in hot_aggregates) and the slow query
 * event with the query's text, above slow_query_ns.
 */
#ifndef MCIV_QUERY_H
#define MCIV_QUERY_H

#include "mciv_types.h"
#include <bpf/bpf_helpers.h>
#include "mciv_events.h"
#include "mciv_histo.h"

#define QUERY_TEXT_MAX 256
#define PROTOCOL_SIMPLE 0   /* a query in one message (PostgreSQL Query, MySQL COM_QUERY) */
#define PROTOCOL_EXTENDED 1 /* a prepared statement's execution */

/* Queries slower than this are reported as events (set at load time). */
volatile const __u64 slow_query_ns = 100000000;

/* A slow query: EVENT_DB_SLOW_QUERY in the events ring buffer. */
struct query_event {
	__u8 kind;     /* enum event_kind: always first */
	__u8 protocol; /* PROTOCOL_SIMPLE or PROTOCOL_EXTENDED */
	__u16 pad;
	__u32 instance; /* the server's process id (PostgreSQL: the postmaster) */
	__u32 pid;      /* the process that ran the query */
	__u32 pad2;
	__u64 ts_ns; /* bpf_ktime_get_ns() at the end of the query */
	__u64 duration_ns;
	char text[QUERY_TEXT_MAX]; /* NUL-terminated, maybe truncated */
};

/* Makes bpf2go emit a Go type for the ring buffer record. */
const struct query_event *unused_query_event __attribute__((unused));

/* reserve_slow_query returns a slow query event of instance with all but
 * its text filled in (the caller fills the text and submits it), or 0 if
 * the ring buffer is full (counted). */
static __always_inline struct query_event *reserve_slow_query(__u32 instance, __u8 protocol, __u64 now, __u64 duration_ns)
{
	struct query_event *e = reserve_event(sizeof(*e));

	if (!e)
		return 0;
	e->kind = EVENT_DB_SLOW_QUERY;
	e->protocol = protocol;
	e->pad = 0;
	e->pad2 = 0;
	e->instance = instance;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->ts_ns = now;
	e->duration_ns = duration_ns;
	return e;
}

/* query_observe records one query of instance that started at start_ns,
 * and reports it with text (QUERY_TEXT_MAX bytes) if it was slow. */
static __always_inline void query_observe(__u32 instance, __u8 protocol, __u64 start_ns, const char *text)
{
	__u64 now = bpf_ktime_get_ns(), d = now - start_ns;
	struct agg_key k = {};
	struct query_event *e;

	k.signal = AGG_DB_QUERY_SECONDS;
	k.aux = instance;
	k.aux2 = protocol;
	agg_observe_hot(&k, d);
	if (d < slow_query_ns)
		return;
	e = reserve_slow_query(instance, protocol, now, d);
	if (!e)
		return;
	bpf_probe_read_kernel(e->text, QUERY_TEXT_MAX, text);
	bpf_ringbuf_submit(e, 0);
}

#endif /* MCIV_QUERY_H */
