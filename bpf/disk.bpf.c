//go:build ignore

/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * disk.bpf.c: block I/O latency of mciv.
 *
 * disk_io_seconds{device, op, cgroup}: the time from a request's issue to
 * the device until its completion, in a histogram per (device, operation,
 * cgroup charged) in the shared aggregates map (headers/mciv_histo.h).
 *
 * Two pairs of programs, the collector attaches one pair:
 *   1. tp_btf/block_rq_issue + tp_btf/block_rq_complete, keyed by the
 *      struct request pointer (the single-argument block_rq_issue of
 *      Linux 5.11 and later);
 *   2. the classic block tracepoints, keyed by (device, sector) as their
 *      records carry no request pointer.
 * The device is the whole disk (major, first minor); the collector names
 * it from /sys/dev/block.
 */

#include "mciv_types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "mciv_histo.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Operations as the collector labels them (aux2 of the aggregates key). */
enum disk_op {
	DISK_OP_READ = 0,
	DISK_OP_WRITE = 1,
	DISK_OP_FLUSH = 2,
	DISK_OP_DISCARD = 3,
	DISK_OP_OTHER = 255,
};

struct io_start {
	__u64 ts_ns;
	__u32 dev;     /* kernel dev_t: major << 20 | minor */
	__u32 op;      /* enum disk_op */
	__u64 cgroup;  /* id of the cgroup the I/O is charged to, 0 unknown */
};

/* Requests in flight: struct request * for tp_btf, (dev, sector) hashed
 * into a u64 for the classic tracepoints. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct io_start);
} io_start SEC(".maps");

static __always_inline void io_done(__u64 id)
{
	struct io_start *s = bpf_map_lookup_elem(&io_start, &id);
	struct agg_key k = {};

	if (!s)
		return;
	k.signal = AGG_DISK_IO_SECONDS;
	k.aux = s->dev;
	k.aux2 = s->op;
	k.cgroup = s->cgroup;
	agg_observe(&k, bpf_ktime_get_ns() - s->ts_ns);
	bpf_map_delete_elem(&io_start, &id);
}

/* ---- 1. tp_btf ----------------------------------------------------------- */

SEC("tp_btf/block_rq_issue")
int BPF_PROG(block_rq_issue_btf, struct request *rq)
{
	struct io_start s = {};
	__u64 id = (__u64)rq;
	__u32 op = BPF_CORE_READ(rq, cmd_flags) & REQ_OP_MASK;

	switch (op) {
	case REQ_OP_READ:
		s.op = DISK_OP_READ;
		break;
	case REQ_OP_WRITE:
		s.op = DISK_OP_WRITE;
		break;
	case REQ_OP_FLUSH:
		s.op = DISK_OP_FLUSH;
		break;
	case REQ_OP_DISCARD:
		s.op = DISK_OP_DISCARD;
		break;
	default:
		return 0;
	}
	s.dev = ((__u32)BPF_CORE_READ(rq, q, disk, major) << 20) |
		(__u32)BPF_CORE_READ(rq, q, disk, first_minor);
	/* The cgroup the I/O is charged to: its io controller's (cgroup
	 * v2's, or v1 blkio's on hosts that mount it). The root's requests
	 * and those without a bio (a flush) have the root's or none. */
	if (bpf_core_field_exists(struct bio, bi_blkg))
		s.cgroup = BPF_CORE_READ(rq, bio, bi_blkg, blkcg, css.cgroup, kn, id);
	s.ts_ns = bpf_ktime_get_ns();
	bpf_map_update_elem(&io_start, &id, &s, BPF_ANY);
	return 0;
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(block_rq_complete_btf, struct request *rq)
{
	io_done((__u64)rq);
	return 0;
}

/* ---- 2. classic tracepoints ------------------------------------------- */

/* rwbs_op decodes the operation letters of a block tracepoint record
 * (kernel blk_fill_rwbs: an optional F for a pre-flush, then the op). */
static __always_inline __u32 rwbs_op(const char *rwbs)
{
	char c0 = rwbs[0], c1 = rwbs[1];

	if (c0 == 'F')
		c0 = c1 ? c1 : 'F';
	switch (c0) {
	case 'R':
		return DISK_OP_READ;
	case 'W':
		return DISK_OP_WRITE;
	case 'D':
		return DISK_OP_DISCARD;
	case 'F':
	case 'N':
		return DISK_OP_FLUSH;
	}
	return DISK_OP_OTHER;
}

static __always_inline __u64 tp_id(__u32 dev, __u64 sector)
{
	return sector ^ ((__u64)dev << 44);
}

SEC("tracepoint/block/block_rq_issue")
int block_rq_issue_tp(struct trace_event_raw_block_rq *rec)
{
	struct io_start s = {};
	char rwbs[2];
	__u64 id;

	bpf_probe_read_kernel(rwbs, sizeof(rwbs), rec->rwbs);
	s.op = rwbs_op(rwbs);
	if (s.op == DISK_OP_OTHER)
		return 0;
	/* The record's dev is the partition; the collector maps it to its
	 * disk. */
	s.dev = rec->dev;
	s.ts_ns = bpf_ktime_get_ns();
	id = tp_id(rec->dev, rec->sector);
	bpf_map_update_elem(&io_start, &id, &s, BPF_ANY);
	return 0;
}

SEC("tracepoint/block/block_rq_complete")
int block_rq_complete_tp(struct trace_event_raw_block_rq_completion *rec)
{
	io_done(tp_id(rec->dev, rec->sector));
	return 0;
}
