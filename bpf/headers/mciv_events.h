/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * mciv_events.h: the one ring buffer that carries rare, notable events from
 * every mciv probe to the collector, and the counter of events it dropped.
 *
 * Each object that includes this header gets its own definition of the maps;
 * the collector creates them once and hands the same maps to every object
 * (cilium/ebpf MapReplacements), so all probes share one ring buffer and
 * one drop counter.
 *
 * Rule for records: every record starts with one byte, its kind
 * (enum event_kind), so the reader can tell records apart as new probes add
 * new record layouts.
 */
#ifndef MCIV_EVENTS_H
#define MCIV_EVENTS_H

#include "mciv_types.h"
#include <bpf/bpf_helpers.h>

/* Size of the ring buffer: a power of two multiple of the page size. */
#define EVENTS_RINGBUF_BYTES (256 * 1024)

enum event_kind {
	EVENT_TCP_RETRANSMIT = 1,
	EVENT_TCP_RESET_SENT = 2,     /* struct sock_event */
	EVENT_TCP_RESET_RECEIVED = 3, /* struct sock_event */
	EVENT_DB_SLOW_QUERY = 4,      /* struct query_event */
};

/* An event about one TCP socket. Addresses are in network byte order; an
 * IPv4 address occupies the first 4 bytes of its 16. */
struct sock_event {
	__u8 kind;      /* enum event_kind: always first */
	__u8 state;     /* TCP state, as in include/net/tcp_states.h */
	__u16 family;   /* AF_INET or AF_INET6 */
	__u16 sport;    /* local port, host byte order */
	__u16 dport;    /* peer port, host byte order */
	__u64 ts_ns;    /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u8 saddr[16]; /* local address */
	__u8 daddr[16]; /* peer address */
	__u32 netns;    /* network namespace inode of the socket, 0 unknown */
	__u32 pad;      /* always zero */
	__u64 cgroup;   /* cgroup (v2) id of the socket, 0 unknown */
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, EVENTS_RINGBUF_BYTES);
	/* Not a real value type (ring buffers have none; the loader drops it):
	 * it puts struct sock_event into the object's BTF so bpf2go emits a
	 * Go type for it. */
	__type(value, struct sock_event);
} events SEC(".maps");

/* Events lost because the ring buffer was full: one counter per CPU, so
 * counting never contends; the collector sums them. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} events_dropped SEC(".maps");

static __always_inline void count_event_drop(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&events_dropped, &zero);

	if (n)
		*n += 1; /* per-CPU slot: no atomic needed */
}

/* reserve_event returns room for one record of size bytes in the ring
 * buffer, or NULL after counting the drop. */
static __always_inline void *reserve_event(__u64 size)
{
	void *e = bpf_ringbuf_reserve(&events, size, 0);

	if (!e)
		count_event_drop();
	return e;
}

#endif /* MCIV_EVENTS_H */
