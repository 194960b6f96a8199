/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * mciv_histo.h: the shared log-linear histogram layout (internal/histo)
 * computed in the kernel, and the one aggregation map every probe adds its
 * counters and histogram buckets to.
 *
 * Layout (must match histo.Index exactly; bpf/histo_test.go checks it):
 * values below 64 have a bucket each; a value v >= 64 with most significant
 * bit m falls into bucket (m - 5) * 64 + (the 6 bits below bit m).
 *
 * The aggregates map is an LRU hash of cumulative u64 values keyed by
 * (signal, labels, bucket). A histogram is its buckets plus one key with
 * bucket AGG_SUM_BUCKET holding the sum of the observed values; a counter
 * is one key with bucket 0. The collector reads the map once per interval
 * and publishes the increases. Like the events ring buffer, the map is
 * created once and shared by every object (map replacement).
 *
 * Histograms observed on every packet or query (RTT, query latency) go to
 * hot_aggregates instead: the same keys, but one value per CPU, so that
 * no cache line moves between CPUs, and each bucket's value carries its
 * own count and sum, so that an observation is one hash lookup instead of
 * two. The collector sums the CPUs and the buckets' sums.
 */
#ifndef MCIV_HISTO_H
#define MCIV_HISTO_H

#include "mciv_types.h"
#include <bpf/bpf_helpers.h>

#define HISTO_SUB_BITS 6
#define HISTO_SUB (1 << HISTO_SUB_BITS)

/* The bucket of the key that holds a histogram's sum. */
#define AGG_SUM_BUCKET 0xffffffffu

/* Bound on distinct keys (labels x buckets) held in the kernel. */
#define AGG_KEYS 65536

/* Signals of the aggregates map (collector/aggregates.go names them). */
enum agg_signal {
	AGG_TCP_CONNECT_SECONDS = 1,  /* histogram; addr/aux = peer */
	AGG_TCP_RTT_SECONDS = 2,      /* histogram; addr/aux = peer */
	AGG_DISK_IO_SECONDS = 3,      /* histogram; aux = dev_t, aux2 = op */
	AGG_DB_QUERY_SECONDS = 4,     /* histogram; aux = instance, aux2 = protocol */
	AGG_TCP_RESETS_SENT = 16,     /* counter; addr/aux = peer, aux2 = local port */
	AGG_TCP_RESETS_RECEIVED = 17, /* counter; addr/aux = peer, aux2 = local port */
	AGG_TCP_CONNECT_ERRORS = 18,  /* counter; addr/aux = peer */
};

/* Key of the aggregates map. No implicit padding: every byte is hashed. */
struct agg_key {
	__u32 bucket;  /* histogram bucket, AGG_SUM_BUCKET, or 0 for a counter */
	__u16 signal;  /* enum agg_signal */
	__u16 family;  /* AF_INET/AF_INET6 when addr is an address, else 0 */
	__u32 aux;     /* peer port, dev_t, instance: see enum agg_signal */
	__u32 aux2;    /* local port, op, protocol: see enum agg_signal */
	__u8 addr[16]; /* peer address, network byte order; IPv4 in [0:4] */
	__u32 netns;   /* TCP signals: network namespace inode, 0 unknown */
	__u32 pad;     /* always zero */
	__u64 cgroup;  /* TCP and disk signals: cgroup id of the socket or I/O, 0 unknown */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, AGG_KEYS);
	__type(key, struct agg_key);
	__type(value, __u64);
} aggregates SEC(".maps");

/* Bound on the distinct keys of hot_aggregates (each takes 16 bytes per
 * CPU). */
#define AGG_HOT_KEYS 16384

/* A bucket of a hot histogram: its observations and their sum. */
struct agg_hist {
	__u64 count;
	__u64 sum;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, AGG_HOT_KEYS);
	__type(key, struct agg_key);
	__type(value, struct agg_hist);
} hot_aggregates SEC(".maps");

/* histo_msb returns the index of the most significant set bit of v > 0,
 * without a loop: a binary search over shifts. */
static __always_inline __u32 histo_msb(__u64 v)
{
	__u32 r = 0;

	if (v >> 32) {
		v >>= 32;
		r += 32;
	}
	if (v >> 16) {
		v >>= 16;
		r += 16;
	}
	if (v >> 8) {
		v >>= 8;
		r += 8;
	}
	if (v >> 4) {
		v >>= 4;
		r += 4;
	}
	if (v >> 2) {
		v >>= 2;
		r += 2;
	}
	if (v >> 1)
		r += 1;
	return r;
}

/* histo_index returns the bucket of v: histo.Index in C. */
static __always_inline __u32 histo_index(__u64 v)
{
	__u32 m, shift, mantissa;

	if (v < HISTO_SUB)
		return (__u32)v;
	m = histo_msb(v); /* >= HISTO_SUB_BITS */
	shift = m - HISTO_SUB_BITS;
	mantissa = (__u32)(v >> shift) - HISTO_SUB; /* in [0, 64) */
	return (m - HISTO_SUB_BITS + 1) * HISTO_SUB + mantissa;
}

/* agg_add adds n to the value of key in the shared aggregates map,
 * creating it if needed. */
static __always_inline void agg_add(const struct agg_key *key, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&aggregates, key);

	if (v) {
		__sync_fetch_and_add(v, n);
		return;
	}
	/* Another CPU may insert the key at the same moment: then add to the
	 * value it created. */
	if (bpf_map_update_elem(&aggregates, key, &n, BPF_NOEXIST) == -EEXIST) {
		v = bpf_map_lookup_elem(&aggregates, key);
		if (v)
			__sync_fetch_and_add(v, n);
	}
}

/* agg_count adds one to the counter of key (its bucket is set to 0). */
static __always_inline void agg_count(struct agg_key *key)
{
	key->bucket = 0;
	agg_add(key, 1);
}

/* agg_observe records value_ns in the histogram of key in the shared
 * aggregates map (its bucket is overwritten). */
static __always_inline void agg_observe(struct agg_key *key, __u64 value_ns)
{
	key->bucket = histo_index(value_ns);
	agg_add(key, 1);
	key->bucket = AGG_SUM_BUCKET;
	agg_add(key, value_ns);
}

/* agg_observe_hot records value_ns in the histogram of key in
 * hot_aggregates (its bucket is overwritten). */
static __always_inline void agg_observe_hot(struct agg_key *key, __u64 value_ns)
{
	struct agg_hist fresh = {.count = 1, .sum = value_ns}, *h;

	key->bucket = histo_index(value_ns);
	h = bpf_map_lookup_elem(&hot_aggregates, key);
	if (!h) {
		/* A program that preempted this one on this CPU may insert
		 * the key at the same moment: then add to the value it
		 * created. */
		if (bpf_map_update_elem(&hot_aggregates, key, &fresh, BPF_NOEXIST) != -EEXIST)
			return;
		h = bpf_map_lookup_elem(&hot_aggregates, key);
		if (!h)
			return;
	}
	/* Atomic even on this CPU's value: a program preempting this one
	 * may add to the same bucket. */
	__sync_fetch_and_add(&h->count, 1);
	__sync_fetch_and_add(&h->sum, value_ns);
}

#endif /* MCIV_HISTO_H */
