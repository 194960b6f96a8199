//go:build ignore

/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * steer.bpf.c: connection steering of mciv (`mciv steer`).
 *
 * Four cgroup sock_addr programs, attached to the cgroup (v2) of an
 * application:
 *   cgroup/connect4, cgroup/connect6: a TCP connect() to a listed service
 *     address (a virtual address and port naming a database service, such
 *     as payments-rw) is rewritten to the backend the routes map names for
 *     it; the original service address is kept in the socket's local
 *     storage. A connect() to any other address is left alone, and so is
 *     one to a service with no backend (it fails or succeeds as it would
 *     without mciv).
 *   cgroup/getpeername4, cgroup/getpeername6: a steered socket's peer
 *     reads as the service address, so the application sees what it
 *     dialled.
 *
 * IPv4 is held in the first four bytes of the 16-byte address, family
 * AF_INET; an AF_INET6 socket that connects to an IPv4-mapped address
 * (::ffff:a.b.c.d) is looked up and steered as IPv4.
 *
 * A service may spread its connects over up to STEER_MAX_BACKENDS
 * backends by weight (round robin per CPU, position in `rr`).
 *
 * The agent in steer/ fills `routes` (service -> backends) and reads
 * `connects` (per service and backend, per CPU) for its metrics; it pins
 * the maps and links in bpffs, so steering outlives the agent.
 */

#include "mciv_types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

#define SOCK_STREAM 1

/* struct bpf_sock_addr from include/uapi/linux/bpf.h: the context of
 * sock_addr programs. The verifier rewrites accesses to it, so its layout
 * is the UAPI's and never relocated. */
struct bpf_sock_addr {
	__u32 user_family;
	__u32 user_ip4;    /* network byte order */
	__u32 user_ip6[4]; /* network byte order */
	__u32 user_port;   /* network byte order, in the low 16 bits */
	__u32 family;
	__u32 type;
	__u32 protocol;
	__u32 msg_src_ip4;
	__u32 msg_src_ip6[4];
	union {
		struct bpf_sock *sk;
		__u64 : 64;
	} __attribute__((aligned(8)));
};

/* An address: family, port (network order) and 16 address bytes
 * (IPv4 in the first four). Key of `routes`, and the value stored per
 * steered socket. */
struct steer_addr {
	__u8 addr[16];
	__be16 port;
	__u16 family;
};

/* The most backends a service spreads its connects over. */
#define STEER_MAX_BACKENDS 8

/* One backend of a service, and its share of connects. */
struct steer_target {
	struct steer_addr to;
	__u32 backend_id; /* the agent's numbering of backends (never 0) */
	__u32 upto;       /* cumulative weight: picked when pick < upto */
};

/* What a service address is steered to: n targets, whose weights add up
 * to total; the n-th connect of a CPU picks by n % total (weighted round
 * robin). n == 0: no backend, connects are left alone. */
struct steer_backend {
	__u32 service_id; /* the agent's numbering of services, 1..1023 */
	__u32 n;
	__u32 total;
	struct steer_target t[STEER_MAX_BACKENDS];
};

/* Key of `connects`. */
struct steer_count_key {
	__u32 service_id;
	__u32 backend_id;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct steer_addr);
	__type(value, struct steer_backend);
} routes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct steer_count_key);
	__type(value, __u64);
} connects SEC(".maps");

/* The round-robin position of each service (by service_id), per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u32);
} rr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct steer_addr);
} origins SEC(".maps");

static __always_inline void count(__u32 service, __u32 backend)
{
	struct steer_count_key k = {.service_id = service, .backend_id = backend};
	__u64 one = 1, *v = bpf_map_lookup_elem(&connects, &k);
	if (v)
		*v += 1;
	else
		bpf_map_update_elem(&connects, &k, &one, BPF_NOEXIST);
}

/* steer looks up key and, when it names a backend, picks one of its
 * targets, records key as the socket's origin and returns the target;
 * NULL leaves the connect alone. */
static __always_inline struct steer_target *steer(struct bpf_sock_addr *ctx, struct steer_addr *key)
{
	struct steer_backend *b = bpf_map_lookup_elem(&routes, key);
	if (!b)
		return 0;
	__u32 n = b->n, total = b->total;
	if (n == 0 || total == 0) {
		count(b->service_id, 0);
		return 0;
	}
	__u32 pick = 0;
	if (n > 1) {
		__u32 idx = b->service_id;
		__u32 *pos = bpf_map_lookup_elem(&rr, &idx);
		if (pos) {
			pick = *pos % total;
			*pos += 1;
		}
	}
	struct steer_target *t = 0;
#pragma unroll
	for (int i = 0; i < STEER_MAX_BACKENDS; i++) {
		if (i >= n)
			break;
		if (pick < b->t[i].upto) {
			t = &b->t[i];
			break;
		}
	}
	if (!t)
		return 0;
	struct bpf_sock *sk = ctx->sk;
	if (!sk)
		return 0;
	struct steer_addr *o = bpf_sk_storage_get(&origins, sk, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!o)
		return 0; /* cannot restore the peer name: do not steer */
	*o = *key;
	count(b->service_id, t->backend_id);
	return t;
}

SEC("cgroup/connect4")
int steer_connect4(struct bpf_sock_addr *ctx)
{
	if (ctx->type != SOCK_STREAM)
		return 1;
	struct steer_addr key = {.family = AF_INET};
	__u32 ip = ctx->user_ip4;
	__builtin_memcpy(key.addr, &ip, 4);
	key.port = (__be16)ctx->user_port;
	struct steer_target *b = steer(ctx, &key);
	if (!b || b->to.family != AF_INET)
		return 1;
	__builtin_memcpy(&ip, b->to.addr, 4);
	ctx->user_ip4 = ip;
	ctx->user_port = (__u32)b->to.port;
	return 1;
}

/* v4mapped reports whether the IPv6 address w is ::ffff:a.b.c.d. */
static __always_inline int v4mapped(const __u32 *w)
{
	return w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0xffff);
}

SEC("cgroup/connect6")
int steer_connect6(struct bpf_sock_addr *ctx)
{
	if (ctx->type != SOCK_STREAM)
		return 1;
	__u32 w[4];
	w[0] = ctx->user_ip6[0];
	w[1] = ctx->user_ip6[1];
	w[2] = ctx->user_ip6[2];
	w[3] = ctx->user_ip6[3];
	struct steer_addr key = {};
	if (v4mapped(w)) {
		key.family = AF_INET;
		__builtin_memcpy(key.addr, &w[3], 4);
	} else {
		key.family = AF_INET6;
		__builtin_memcpy(key.addr, w, 16);
	}
	key.port = (__be16)ctx->user_port;
	struct steer_target *b = steer(ctx, &key);
	if (!b)
		return 1;
	if (b->to.family == AF_INET6) {
		__builtin_memcpy(w, b->to.addr, 16);
	} else {
		w[0] = 0;
		w[1] = 0;
		w[2] = bpf_htonl(0xffff);
		__builtin_memcpy(&w[3], b->to.addr, 4);
	}
	ctx->user_ip6[0] = w[0];
	ctx->user_ip6[1] = w[1];
	ctx->user_ip6[2] = w[2];
	ctx->user_ip6[3] = w[3];
	ctx->user_port = (__u32)b->to.port;
	return 1;
}

SEC("cgroup/getpeername4")
int steer_getpeername4(struct bpf_sock_addr *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	if (!sk)
		return 1;
	struct steer_addr *o = bpf_sk_storage_get(&origins, sk, 0, 0);
	if (!o || o->family != AF_INET)
		return 1;
	__u32 ip;
	__builtin_memcpy(&ip, o->addr, 4);
	ctx->user_ip4 = ip;
	ctx->user_port = (__u32)o->port;
	return 1;
}

SEC("cgroup/getpeername6")
int steer_getpeername6(struct bpf_sock_addr *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	if (!sk)
		return 1;
	struct steer_addr *o = bpf_sk_storage_get(&origins, sk, 0, 0);
	if (!o)
		return 1;
	__u32 w[4];
	if (o->family == AF_INET6) {
		__builtin_memcpy(w, o->addr, 16);
	} else {
		w[0] = 0;
		w[1] = 0;
		w[2] = bpf_htonl(0xffff);
		__builtin_memcpy(&w[3], o->addr, 4);
	}
	ctx->user_ip6[0] = w[0];
	ctx->user_ip6[1] = w[1];
	ctx->user_ip6[2] = w[2];
	ctx->user_ip6[3] = w[3];
	ctx->user_port = (__u32)o->port;
	return 1;
}
