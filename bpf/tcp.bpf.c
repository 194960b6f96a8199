//go:build ignore

/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * tcp.bpf.c: TCP probes of mciv.
 *
 * tcp_retransmits_total: every retransmitted TCP segment is counted in an
 * LRU hash keyed by (peer address, peer port, local port, network
 * namespace inode), which the collector reads once per interval, and is
 * reported as a notable event (4-tuple, state, namespace, time) through
 * the shared events ring buffer.
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
 * Every TCP record and key carries the inode of the socket's network
 * namespace (sk->__sk_common.skc_net.net->ns.inum); when the collector
 * sets filter_netns, the probes keep only that namespace's sockets.
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
#include "mciv_histo.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Bound on distinct (peer, local port) keys held in the kernel. When full,
 * the least recently used key is evicted; the collector notices a counter
 * that vanished or went backwards. */
#define RETRANS_KEYS 16384

/* Network namespace filter: when non-zero, only sockets of the network
 * namespace with this inode are counted and reported. The collector sets
 * it before loading (0 observes every namespace). */
const volatile __u32 filter_netns = 0;

/* Key of the retransmit counters. No implicit padding: every byte of a key
 * is hashed, so every byte must be written. */
struct retrans_key {
	__u8 peer[16];    /* peer address, network byte order; IPv4 in [0:4] */
	__u16 family;     /* AF_INET or AF_INET6 */
	__u16 peer_port;  /* host byte order */
	__u16 local_port; /* host byte order */
	__u16 pad;        /* always zero */
	__u32 netns;      /* network namespace inode, 0 unknown */
	__u32 pad2;       /* always zero */
	__u64 cgroup;     /* cgroup id of the socket, 0 unknown */
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
	__u32 netns;  /* network namespace inode of the socket, 0 unknown */
	__u64 cgroup; /* cgroup (v2) id of the socket (tp_btf only), 0 unknown */
};

/* sk_netns returns the inode of the network namespace of sk, 0 if sk is
 * NULL or cannot be read. Works from any program type (probe reads). */
static __always_inline __u32 sk_netns(const struct sock *sk)
{
	if (!sk)
		return 0;
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

/* netns_wanted reports whether the filter lets events of t through. */
static __always_inline int netns_wanted(const struct tcp_tuple *t)
{
	return filter_netns == 0 || t->netns == filter_netns;
}

static __always_inline void count_retransmit(const struct tcp_tuple *t)
{
	struct retrans_key key = {};
	__u64 one = 1, *n;

	__builtin_memcpy(key.peer, t->daddr, sizeof(key.peer));
	key.family = t->family;
	key.peer_port = t->dport;
	key.local_port = t->sport;
	key.netns = t->netns;
	key.cgroup = t->cgroup;

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
	e->netns = t->netns;
	e->pad = 0;
	e->cgroup = t->cgroup;
	bpf_ringbuf_submit(e, 0);
}

static __always_inline void on_retransmit(const struct tcp_tuple *t)
{
	if (t->family != AF_INET && t->family != AF_INET6)
		return;
	if (!netns_wanted(t))
		return;
	count_retransmit(t);
	emit_retransmit(t);
}

/* read_sock_tuple decodes a socket's addresses. For tp_btf programs only:
 * the verifier lets them read their socket argument with plain loads
 * (CO-RE relocated, a fault reads zero), which cost a fraction of the
 * probe reads a classic tracepoint needs. */
static __always_inline void read_sock_tuple(const struct sock *sk, struct tcp_tuple *t)
{
	const struct sock_common *c = &sk->__sk_common;

	t->family = c->skc_family;
	t->state = c->skc_state;
	t->sport = c->skc_num;
	t->dport = bpf_ntohs(c->skc_dport);
	t->netns = c->skc_net.net->ns.inum;
	/* The cgroup the socket was created in; an accepted socket has its
	 * listener's. */
	if (bpf_core_field_exists(sk->sk_cgrp_data.cgroup) && sk->sk_cgrp_data.cgroup)
		t->cgroup = sk->sk_cgrp_data.cgroup->kn->id;
	if (t->family == AF_INET) {
		*(__be32 *)t->saddr = c->skc_rcv_saddr;
		*(__be32 *)t->daddr = c->skc_daddr;
	} else {
		__builtin_memcpy(t->saddr, &c->skc_v6_rcv_saddr, sizeof(t->saddr));
		__builtin_memcpy(t->daddr, &c->skc_v6_daddr, sizeof(t->daddr));
	}
}

/* ---- 1. tp_btf ----------------------------------------------------------- */

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(tcp_retransmit_skb_btf, const struct sock *sk)
{
	struct tcp_tuple t = {};

	if (!sk)
		return 0;
	read_sock_tuple(sk, &t);
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
		(t)->netns = sk_netns((const struct sock *)rec->skaddr);       \
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

/* ---- resets, connects, RTT ----------------------------------------------
 *
 * tcp_resets_total{direction}: tcp:tcp_send_reset fires also for resets
 * sent with no socket (an answer to a segment for a closed port), when the
 * record's addresses come from the segment; only the classic tracepoint
 * decodes those, so it is the one way for sent resets. Received resets have
 * a socket: tp_btf first, tracepoint as the fallback.
 *
 * tcp_connect_seconds / tcp_connect_errors_total: sock:inet_sock_set_state
 * SYN_SENT starts a clock per socket; ESTABLISHED observes the latency,
 * CLOSE counts an error.
 *
 * tcp_rtt_seconds: tcp:tcp_probe fires for each segment received on an
 * established socket; the smoothed RTT of a sample of them goes into a
 * histogram per peer. The smoothed RTT changes slowly (an average over
 * about eight segments already), so a sample keeps the distribution and
 * costs a fraction: a recorded sample (the tuple, the netns, a hash map
 * update) costs several times what the test whether to record does. The
 * tp_btf program records each socket's first RTT_SAMPLE_FIRST segments and
 * then every RTT_SAMPLE_EVERY-th, by the socket's own segment count (no
 * memory of its own to touch on the segments it skips): a histogram of
 * samples, in which a short connection weighs a few samples and a busy one
 * one in RTT_SAMPLE_EVERY of its segments. The classic tracepoint, which
 * cannot read the socket cheaply, records one segment in RTT_TP_SAMPLE_EVERY
 * per CPU.
 */

#define RTT_SAMPLE_FIRST 4
#define RTT_SAMPLE_EVERY 64   /* a power of two */
#define RTT_TP_SAMPLE_EVERY 8 /* a power of two */

/* Segments seen per CPU, for the RTT sampling. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} rtt_segments SEC(".maps");

/* rtt_sampled reports whether this segment's RTT is to be recorded. */
static __always_inline int rtt_sampled(void)
{
	__u32 zero = 0, *n = bpf_map_lookup_elem(&rtt_segments, &zero);

	if (!n)
		return 0;
	*n += 1; /* per-CPU slot: no atomic needed */
	return (*n & (RTT_TP_SAMPLE_EVERY - 1)) == 0;
}

/* Sockets in SYN_SENT and when they entered it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);   /* struct sock * */
	__type(value, __u64); /* bpf_ktime_get_ns() */
} connect_start SEC(".maps");

/* peer_key fills the label part of an aggregates key from a tuple. */
static __always_inline void peer_key(struct agg_key *k, __u16 signal, const struct tcp_tuple *t)
{
	k->signal = signal;
	k->family = t->family;
	k->aux = t->dport;
	__builtin_memcpy(k->addr, t->daddr, sizeof(k->addr));
	k->netns = t->netns;
	k->cgroup = t->cgroup;
}

static __always_inline void emit_sock_event(__u8 kind, const struct tcp_tuple *t)
{
	struct sock_event *e = reserve_event(sizeof(*e));

	if (!e)
		return;
	e->kind = kind;
	e->state = t->state;
	e->family = t->family;
	e->sport = t->sport;
	e->dport = t->dport;
	e->ts_ns = bpf_ktime_get_ns();
	__builtin_memcpy(e->saddr, t->saddr, sizeof(e->saddr));
	__builtin_memcpy(e->daddr, t->daddr, sizeof(e->daddr));
	e->netns = t->netns;
	e->pad = 0;
	e->cgroup = t->cgroup;
	bpf_ringbuf_submit(e, 0);
}

static __always_inline void on_reset(__u16 signal, __u8 kind, const struct tcp_tuple *t)
{
	struct agg_key k = {};

	if (t->family != AF_INET && t->family != AF_INET6)
		return;
	if (!netns_wanted(t))
		return;
	peer_key(&k, signal, t);
	k.aux2 = t->sport;
	agg_count(&k);
	emit_sock_event(kind, t);
}

/* decode_sockaddr reads a struct sockaddr_in or sockaddr_in6 stored in a
 * tracepoint record (28 bytes) into addr and port. */
static __always_inline __u16 decode_sockaddr(const __u8 *sa, __u8 addr[16], __u16 *port)
{
	__u8 buf[28];
	__u16 family;

	if (bpf_probe_read_kernel(buf, sizeof(buf), sa))
		return 0;
	family = *(__u16 *)buf;
	*port = bpf_ntohs(*(__be16 *)(buf + 2));
	if (family == AF_INET)
		__builtin_memcpy(addr, buf + 4, 4);
	else if (family == AF_INET6)
		__builtin_memcpy(addr, buf + 8, 16);
	return family;
}


SEC("tracepoint/tcp/tcp_send_reset")
int tcp_send_reset_tp(struct trace_event_raw_tcp_send_reset *rec)
{
	struct tcp_tuple t = {};
	__u16 f;

	t.state = rec->state;
	/* No socket for a reset answering a segment to a closed port: the
	 * namespace is then the one of the device the segment arrived on. */
	if (rec->skaddr)
		t.netns = sk_netns((const struct sock *)rec->skaddr);
	else
		t.netns = BPF_CORE_READ((const struct sk_buff *)rec->skbaddr, dev, nd_net.net, ns.inum);
	t.family = decode_sockaddr(rec->saddr, t.saddr, &t.sport);
	f = decode_sockaddr(rec->daddr, t.daddr, &t.dport);
	if (f != t.family)
		return 0;
	on_reset(AGG_TCP_RESETS_SENT, EVENT_TCP_RESET_SENT, &t);
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(tcp_receive_reset_btf, const struct sock *sk)
{
	struct tcp_tuple t = {};

	if (!sk)
		return 0;
	read_sock_tuple(sk, &t);
	on_reset(AGG_TCP_RESETS_RECEIVED, EVENT_TCP_RESET_RECEIVED, &t);
	return 0;
}

SEC("tracepoint/tcp/tcp_receive_reset")
int tcp_receive_reset_tp(struct trace_event_raw_tcp_event_sk *rec)
{
	struct tcp_tuple t = {};

	t.sport = rec->sport;
	t.dport = rec->dport;
	t.family = rec->family;
	t.netns = sk_netns((const struct sock *)rec->skaddr);
	if (t.family == AF_INET) {
		BPF_CORE_READ_INTO((__u8(*)[4])t.saddr, rec, saddr);
		BPF_CORE_READ_INTO((__u8(*)[4])t.daddr, rec, daddr);
	} else {
		BPF_CORE_READ_INTO(&t.saddr, rec, saddr_v6);
		BPF_CORE_READ_INTO(&t.daddr, rec, daddr_v6);
	}
	on_reset(AGG_TCP_RESETS_RECEIVED, EVENT_TCP_RESET_RECEIVED, &t);
	return 0;
}

static __always_inline void on_set_state(__u64 sk, int oldstate, int newstate, const struct tcp_tuple *t)
{
	struct agg_key k = {};
	__u64 now, *start;

	if (!netns_wanted(t))
		return;
	if (newstate == TCP_SYN_SENT) {
		now = bpf_ktime_get_ns();
		bpf_map_update_elem(&connect_start, &sk, &now, BPF_ANY);
		return;
	}
	if (oldstate != TCP_SYN_SENT)
		return;
	start = bpf_map_lookup_elem(&connect_start, &sk);
	if (!start)
		return;
	now = bpf_ktime_get_ns();
	if (newstate == TCP_ESTABLISHED) {
		peer_key(&k, AGG_TCP_CONNECT_SECONDS, t);
		agg_observe(&k, now - *start);
	} else if (newstate == TCP_CLOSE) {
		peer_key(&k, AGG_TCP_CONNECT_ERRORS, t);
		agg_count(&k);
	}
	bpf_map_delete_elem(&connect_start, &sk);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(inet_sock_set_state_btf, const struct sock *sk, int oldstate, int newstate)
{
	struct tcp_tuple t = {};

	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	read_sock_tuple(sk, &t);
	on_set_state((__u64)sk, oldstate, newstate, &t);
	return 0;
}

SEC("tracepoint/sock/inet_sock_set_state")
int inet_sock_set_state_tp(struct trace_event_raw_inet_sock_set_state *rec)
{
	struct tcp_tuple t = {};

	if (rec->protocol != IPPROTO_TCP)
		return 0;
	t.sport = rec->sport;
	t.dport = rec->dport;
	t.family = rec->family;
	t.netns = sk_netns((const struct sock *)rec->skaddr);
	if (t.family == AF_INET) {
		BPF_CORE_READ_INTO((__u8(*)[4])t.saddr, rec, saddr);
		BPF_CORE_READ_INTO((__u8(*)[4])t.daddr, rec, daddr);
	} else {
		BPF_CORE_READ_INTO(&t.saddr, rec, saddr_v6);
		BPF_CORE_READ_INTO(&t.daddr, rec, daddr_v6);
	}
	on_set_state((__u64)rec->skaddr, rec->oldstate, rec->newstate, &t);
	return 0;
}

static __always_inline void on_rtt(const struct tcp_tuple *t, __u64 srtt_us)
{
	struct agg_key k = {};

	if (t->family != AF_INET && t->family != AF_INET6)
		return;
	if (!netns_wanted(t))
		return;
	peer_key(&k, AGG_TCP_RTT_SECONDS, t);
	/* By peer address only: the peer port of an accepted connection is
	 * ephemeral and would make a series per connection. */
	k.aux = 0;
	agg_observe_hot(&k, srtt_us * 1000);
}

SEC("tp_btf/tcp_probe")
int BPF_PROG(tcp_probe_btf, const struct sock *sk)
{
	struct tcp_tuple t = {};
	struct tcp_sock *tp;
	__u32 n;

	if (!sk)
		return 0;
	tp = bpf_skc_to_tcp_sock((void *)sk);
	if (!tp)
		return 0;
	n = tp->segs_in;
	if (n > RTT_SAMPLE_FIRST && (n & (RTT_SAMPLE_EVERY - 1)))
		return 0;
	read_sock_tuple(sk, &t);
	on_rtt(&t, tp->srtt_us >> 3);
	return 0;
}

SEC("tracepoint/tcp/tcp_probe")
int tcp_probe_tp(struct trace_event_raw_tcp_probe *rec)
{
	struct tcp_tuple t = {};
	__u16 f;

	if (!rtt_sampled())
		return 0;
	t.family = decode_sockaddr(rec->saddr, t.saddr, &t.sport);
	f = decode_sockaddr(rec->daddr, t.daddr, &t.dport);
	if (f != t.family)
		return 0;
	if (bpf_core_field_exists(rec->skaddr))
		t.netns = sk_netns((const struct sock *)rec->skaddr);
	on_rtt(&t, rec->srtt);
	return 0;
}
