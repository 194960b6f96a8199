//go:build ignore

/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * mysql.bpf.c: MySQL/MariaDB query latency from a uprobe and a uretprobe
 * on dispatch_command, the server function that runs one client command.
 *
 * db_query_seconds{instance, protocol}: COM_QUERY commands are the simple
 * protocol (their packet is the query text), COM_STMT_EXECUTE the
 * extended one (prepared statements, no text). The server is one process,
 * so the instance is its pid; the collector names it mysql:<port>.
 *
 * Where the arguments live depends on the function's signature in the
 * server version and on the architecture's calling convention; the
 * collector passes it in the attach cookie: bits 0-7 the pt_regs slot of
 * the command, 8-15 of the packet pointer, 16-23 of the packet length.
 */

#include "mciv_types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "mciv_events.h"
#include "mciv_histo.h"
#include "mciv_query.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

#define COM_QUERY 3
#define COM_STMT_EXECUTE 23

struct mysql_state {
	__u64 start_ns;
	__u32 protocol;
	__u32 pad;
	char text[QUERY_TEXT_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct mysql_state);
} mysql_queries SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mysql_state);
} mysql_zero SEC(".maps");

static __always_inline __u64 reg_slot(struct pt_regs *ctx, __u32 slot)
{
	__u64 v = 0;

	if (slot >= 32)
		return 0;
	bpf_probe_read_kernel(&v, sizeof(v), (void *)ctx + slot * 8);
	return v;
}

SEC("uprobe")
int mysql_dispatch_enter(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u64 id = bpf_get_current_pid_tgid();
	__u32 command = (__u32)reg_slot(ctx, cookie & 0xff), zero = 0;
	struct mysql_state *s;
	__u64 packet, len;

	if (command != COM_QUERY && command != COM_STMT_EXECUTE)
		return 0;
	s = bpf_map_lookup_elem(&mysql_zero, &zero);
	if (!s)
		return 0;
	bpf_map_update_elem(&mysql_queries, &id, s, BPF_ANY);
	s = bpf_map_lookup_elem(&mysql_queries, &id);
	if (!s)
		return 0;
	s->protocol = command == COM_QUERY ? PROTOCOL_SIMPLE : PROTOCOL_EXTENDED;
	if (command == COM_QUERY) {
		packet = reg_slot(ctx, (cookie >> 8) & 0xff);
		len = reg_slot(ctx, (cookie >> 16) & 0xff) & 0xffffffff;
		if (len > QUERY_TEXT_MAX - 1)
			len = QUERY_TEXT_MAX - 1;
		if (packet && len > 0)
			bpf_probe_read_user(s->text, len & (QUERY_TEXT_MAX - 1), (void *)packet);
	}
	s->start_ns = bpf_ktime_get_ns();
	return 0;
}

SEC("uretprobe")
int mysql_dispatch_return(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct mysql_state *s = bpf_map_lookup_elem(&mysql_queries, &id);

	if (!s)
		return 0;
	query_observe(id >> 32, s->protocol, s->start_ns, s->text);
	bpf_map_delete_elem(&mysql_queries, &id);
	return 0;
}
