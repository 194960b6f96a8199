//go:build ignore

/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * tcp.bpf.c: TCP probes of mciv.
 *
 * tcp_retransmits_total: every retransmitted TCP segment is counted in an
 * LRU hash keyed by (peer address, peer port, local port), which the
 * collector reads once per interval, and is reported as a notable event
 * (4-tuple, state, time) through the shared events ring buffer.
 *
 * Two programs observe the same kernel event; the collector attaches the
 * first one the kernel accepts, never both:
 *   1. tp_btf/tcp_retransmit_skb: BTF-typed raw tracepoint, receives
 *      (struct sock *sk, struct sk_buff *skb) on every kernel since 5.5;
 *   2. tracepoint/tcp/tcp_retransmit_skb: classic tracepoint, reads the
 *      fields of the tracepoint record, whose type name changed over time.
 *
 * Retransmits fire in softirq or timer context: the current task is
 * whoever happened to run, so nothing here looks at the pid.
 *
 * Adding a probe: write its program(s) in this style (decode the hook's
 * arguments into a small struct, then share the counting and event code),
 * add the kernel fields it reads to headers/mciv_types.h, its record kind
 * to headers/mciv_events.h, and run `go generate ./bpf`.
 */

#include "mciv_types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>
#include "mciv_events.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Bound on distinct (peer, local port) keys held in the kernel. When full,
 * the least recently used key is evicted; the collector notices a counter
 * that vanished or went backwards. */
#define RETRANS_KEYS 16384

/* Key of the retransmit counters. No implicit padding: every byte of a key
 * is hashed, so every byte must be written. */
struct retrans_key {
	__u8 peer[16];    /* peer address, network byte order; IPv4 in [0:4] */
	__u16 family;     /* AF_INET or AF_INET6 */
	__u16 peer_port;  /* host byte order */
	__u16 local_port; /* host byte order */
	__u16 pad;        /* always zero */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, RETRANS_KEYS);
	__type(key, struct retrans_key);
	__type(value, __u64);
} tcp_retransmits SEC(".maps");

/* A TCP socket's identity as the hooks decode it. */
struct tcp_tuple {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 family;
	__u16 sport; /* host byte order */
	__u16 dport; /* host byte order */
	__u8 state;
};

static __always_inline void count_retransmit(const struct tcp_tuple *t)
{
	struct retrans_key key = {};
	__u64 one = 1, *n;

	__builtin_memcpy(key.peer, t->daddr, sizeof(key.peer));
	key.family = t->family;
	key.peer_port = t->dport;
	key.local_port = t->sport;

	n = bpf_map_lookup_elem(&tcp_retransmits, &key);
	if (n) {
		__sync_fetch_and_add(n, 1);
		return;
	}
	/* First retransmit for this key. Another CPU may insert it at the
	 * same moment: then add to the value it created. */
	if (bpf_map_update_elem(&tcp_retransmits, &key, &one, BPF_NOEXIST) == -EEXIST) {
		n = bpf_map_lookup_elem(&tcp_retransmits, &key);
		if (n)
			__sync_fetch_and_add(n, 1);
	}
}

static __always_inline void emit_retransmit(const struct tcp_tuple *t)
{
	struct sock_event *e = reserve_event(sizeof(*e));

	if (!e)
		return;
	e->kind = EVENT_TCP_RETRANSMIT;
	e->state = t->state;
	e->family = t->family;
	e->sport = t->sport;
	e->dport = t->dport;
	e->ts_ns = bpf_ktime_get_ns();
	__builtin_memcpy(e->saddr, t->saddr, sizeof(e->saddr));
	__builtin_memcpy(e->daddr, t->daddr, sizeof(e->daddr));
	bpf_ringbuf_submit(e, 0);
}

static __always_inline void on_retransmit(const struct tcp_tuple *t)
{
	if (t->family != AF_INET && t->family != AF_INET6)
		return;
	count_retransmit(t);
	emit_retransmit(t);
}

/* ---- 1. tp_btf ----------------------------------------------------------- */

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(tcp_retransmit_skb_btf, const struct sock *sk)
{
	struct tcp_tuple t = {};

	if (!sk)
		return 0;
	t.family = BPF_CORE_READ(sk, __sk_common.skc_family);
	t.state = BPF_CORE_READ(sk, __sk_common.skc_state);
	t.sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	t.dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (t.family == AF_INET) {
		BPF_CORE_READ_INTO((__be32 *)t.saddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__be32 *)t.daddr, sk, __sk_common.skc_daddr);
	} else {
		BPF_CORE_READ_INTO((struct in6_addr *)t.saddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO((struct in6_addr *)t.daddr, sk, __sk_common.skc_v6_daddr);
	}
	on_retransmit(&t);
	return 0;
}

/* ---- 2. classic tracepoint --------------------------------------------- */

/* Decode a tcp_retransmit_skb record of type T into the tuple t.
 *
 * The verifier allows only direct loads at a constant offset from the
 * context pointer: fine for the scalar fields, but clang addresses array
 * elements through a computed pointer, so the address arrays are copied
 * with bpf_probe_read_kernel instead. Both are CO-RE relocated: the field
 * offsets come from this kernel's BTF.
 *
 * Kernels whose record has no family field store IPv4 addresses
 * IPv4-mapped in the v6 fields; the collector unmaps them. */
#define DECODE_TP_RECORD(T, ctx, t)                                            \
	do {                                                                   \
		T *rec = (T *)(ctx);                                           \
		if (bpf_core_field_exists(rec->state))                         \
			(t)->state = rec->state;                               \
		(t)->sport = rec->sport;                                       \
		(t)->dport = rec->dport;                                       \
		(t)->family = AF_INET6;                                        \
		if (bpf_core_field_exists(rec->family))                        \
			(t)->family = rec->family;                             \
		if ((t)->family == AF_INET) {                                  \
			BPF_CORE_READ_INTO((__u8(*)[4])(t)->saddr, rec, saddr); \
			BPF_CORE_READ_INTO((__u8(*)[4])(t)->daddr, rec, daddr); \
		} else {                                                       \
			BPF_CORE_READ_INTO(&(t)->saddr, rec, saddr_v6);        \
			BPF_CORE_READ_INTO(&(t)->daddr, rec, daddr_v6);        \
		}                                                              \
	} while (0)

SEC("tracepoint/tcp/tcp_retransmit_skb")
int tcp_retransmit_skb_tp(void *ctx)
{
	struct tcp_tuple t = {};

	/* The record type was renamed when tcp_retransmit_skb got its own
	 * event class; the loader resolves which name this kernel uses and
	 * the verifier drops the other branch. */
	if (bpf_core_type_exists(struct trace_event_raw_tcp_retransmit_skb))
		DECODE_TP_RECORD(struct trace_event_raw_tcp_retransmit_skb, ctx, &t);
	else if (bpf_core_type_exists(struct trace_event_raw_tcp_event_sk_skb))
		DECODE_TP_RECORD(struct trace_event_raw_tcp_event_sk_skb, ctx, &t);
	else
		return 0;
	on_retransmit(&t);
	return 0;
}
