//go:build ignore

/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * pg.bpf.c: PostgreSQL query latency from the server's USDT probes.
 *
 * db_query_seconds{instance, protocol}: PostgreSQL's exec_simple_query
 * fires postgresql:query__start (argument: the query text) and
 * query__done around a simple-protocol query; PortalRun fires
 * query__execute__start/done around every portal run, which for the
 * extended protocol is the Execute message. Inside a simple query the
 * execute probes are ignored, so each query is counted once, under its
 * protocol. The text of an extended query is the last one parsed
 * (query__parse__start) in the same cycle, if any.
 *
 * Instances: every backend is a child of the postmaster, so the sample is
 * keyed by the parent's pid; the collector names it postgres:<port>.
 *
 * The collector attaches these programs as uprobes at the probe addresses
 * it reads from the binary's .note.stapsdt, with the probe's semaphore as
 * the uprobe reference counter. Where the text argument lives (a register,
 * or memory at a register plus a displacement) comes with the attach
 * cookie: bits 0-7 the pt_regs slot (0xff: none), bit 8 dereference, bits
 * 32-63 the signed displacement.
 *
 * Slow queries (over slow_query_ns, set by the collector before loading)
 * go to the events ring buffer with their text; the collector normalises
 * the text before anything leaves the host.
 */

#include "mciv_types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "mciv_events.h"
#include "mciv_histo.h"
#include "mciv_query.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

#define ARG_NONE 0xff

/* A query being run by one backend thread. */
struct query_state {
	__u64 start_ns;      /* query__start, or the outermost execute start */
	__u32 depth;         /* nesting of query__execute__start */
	__u32 simple;        /* a simple-protocol query is running */
	char text[QUERY_TEXT_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct query_state);
} queries SEC(".maps");

/* A zeroed query_state to insert from (too big for the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct query_state);
} query_zero SEC(".maps");

/* Makes bpf2go emit a Go type for the ring buffer record. */
const struct query_event *unused_query_event __attribute__((unused));

static __always_inline struct query_state *state_of(__u64 id, int create)
{
	struct query_state *s = bpf_map_lookup_elem(&queries, &id);
	__u32 zero = 0;

	if (s || !create)
		return s;
	s = bpf_map_lookup_elem(&query_zero, &zero);
	if (!s)
		return 0;
	bpf_map_update_elem(&queries, &id, s, BPF_ANY);
	return bpf_map_lookup_elem(&queries, &id);
}

/* read_arg reads the probe's pointer argument as the cookie describes it;
 * 0 if there is none. */
static __always_inline __u64 read_arg(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u32 slot = cookie & 0xff;
	__u64 v = 0;

	if (slot == ARG_NONE || slot >= 32)
		return 0;
	if (bpf_probe_read_kernel(&v, sizeof(v), (void *)ctx + slot * 8))
		return 0;
	if (cookie & 0x100) {
		__u64 addr = v + (__s64)(__s32)(cookie >> 32);

		v = 0;
		if (bpf_probe_read_user(&v, sizeof(v), (void *)addr))
			return 0;
	}
	return v;
}

static __always_inline __u32 postmaster_pid(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	return BPF_CORE_READ(task, real_parent, tgid);
}

static __always_inline void query_done(struct query_state *s, __u8 protocol)
{
	query_observe(postmaster_pid(), protocol, s->start_ns, s->text);
}

SEC("uprobe")
int pg_query_start(struct pt_regs *ctx)
{
	struct query_state *s = state_of(bpf_get_current_pid_tgid(), 1);
	__u64 text = read_arg(ctx);

	if (!s)
		return 0;
	s->simple = 1;
	s->depth = 0;
	s->text[0] = 0;
	if (text)
		bpf_probe_read_user_str(s->text, sizeof(s->text), (void *)text);
	s->start_ns = bpf_ktime_get_ns();
	return 0;
}

SEC("uprobe")
int pg_query_done(struct pt_regs *ctx)
{
	struct query_state *s = state_of(bpf_get_current_pid_tgid(), 0);

	if (!s || !s->simple)
		return 0;
	query_done(s, PROTOCOL_SIMPLE);
	s->simple = 0;
	s->text[0] = 0;
	return 0;
}

SEC("uprobe")
int pg_query_parse_start(struct pt_regs *ctx)
{
	struct query_state *s;
	__u64 text = read_arg(ctx);

	s = state_of(bpf_get_current_pid_tgid(), 1);
	if (!s || s->simple || !text)
		return 0;
	bpf_probe_read_user_str(s->text, sizeof(s->text), (void *)text);
	return 0;
}

SEC("uprobe")
int pg_query_execute_start(struct pt_regs *ctx)
{
	struct query_state *s = state_of(bpf_get_current_pid_tgid(), 1);

	if (!s || s->simple)
		return 0;
	if (s->depth == 0)
		s->start_ns = bpf_ktime_get_ns();
	if (s->depth < 64)
		s->depth++;
	return 0;
}

SEC("uprobe")
int pg_query_execute_done(struct pt_regs *ctx)
{
	struct query_state *s = state_of(bpf_get_current_pid_tgid(), 0);

	if (!s || s->simple || s->depth == 0)
		return 0;
	if (--s->depth > 0)
		return 0;
	query_done(s, PROTOCOL_EXTENDED);
	s->text[0] = 0;
	return 0;
}
