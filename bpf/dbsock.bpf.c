//go:build ignore

/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * dbsock.bpf.c: database query latency measured at the server's sockets.
 *
 * db_query_seconds{instance, protocol}: a request is the bytes a server
 * socket receives after it last sent; its latency runs from the first
 * receive to the server's next send (the first byte of the answer). The
 * kernel's sock:sock_recv_length and sock:sock_send_length tracepoints
 * fire inside every recv/send on every socket; a socket is a database's
 * when its local port and network namespace are in db_listeners, or (a
 * Unix socket, tp_btf only) when the file it is bound to is in
 * db_unix_listeners: the collector fills both from the servers it
 * discovers.
 *
 * This costs two tracepoint hits per query, where the USDT probes of
 * pg.bpf.c cost two or more uprobe traps (each a breakpoint exception
 * and a return to user space): on a 2-core VM an uprobe trap costs
 * several microseconds, a tracepoint program a few hundred nanoseconds.
 *
 * What the tracepoints cannot see, the server's memory tells:
 *   - which connections carry queries: a PostgreSQL backend is ready once
 *     it has a database (MyDatabaseId != 0: the startup, TLS and password
 *     exchanges before it are not queries); a walsender (am_walsender)
 *     streams WAL and is never measured. The collector finds both
 *     variables' addresses in the server binary's dynamic symbols;
 *   - the protocol and, for slow queries, the text: the tp_btf programs
 *     read the receiving task's syscall registers (recvfrom or read), so
 *     they know the user buffer the request landed in: its first byte is
 *     the message type ('Q' simple, 'P'/'B'/'E'... extended), and a slow
 *     query's text is read from it when the answer is sent (PostgreSQL
 *     does not read from the socket while a query runs). The classic
 *     tracepoint fallback has no registers: protocol "unknown", no text.
 *
 * The clock: bpf_ktime_get_ns() reads the clock source, which on a VM's
 * kvm-clock costs about 200 ns, twice per query. TCP keeps the same clock
 * in the socket (tcp_clock_cache), refreshed when a segment arrives and
 * before segments are transmitted: at the server's first receive it holds
 * the request's arrival, and at the server's send (the tracepoint fires
 * after the segment went out) the answer's departure. The tp_btf programs
 * read it; the fallback, and a send that transmitted nothing, read the
 * clock.
 *
 * Slow queries (over slow_query_ns) go to the events ring buffer as
 * struct query_event; the collector normalises the text before anything
 * leaves the host.
 */

#include "mciv_types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "mciv_events.h"
#include "mciv_histo.h"
#include "mciv_query.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

#define PROTOCOL_UNKNOWN 2 /* the request's first byte was not seen */
#define MSG_PEEK 2

/* Where the receiving task's syscall number and second argument (the
 * buffer of recvfrom and read) are in its user pt_regs, in 8-byte slots,
 * and the numbers of those two syscalls: set by the collector for its
 * architecture before loading (0xff: do not read registers). */
volatile const __u32 regs_nr_slot = 0xff;
volatile const __u32 regs_buf_slot = 0xff;
volatile const __u64 nr_recvfrom = ~0ULL;
volatile const __u64 nr_read = ~0ULL;

/* A server's listening port in one network namespace. */
struct db_listener_key {
	__u32 netns; /* network namespace inode */
	__u16 port;  /* local port, host byte order */
	__u16 pad;   /* always zero */
};

/* What the collector knows about a server. */
struct db_listener {
	__u32 instance;    /* the server's pid (PostgreSQL: the postmaster) */
	__u32 slot;        /* its rows of db_hist, DB_NO_SLOT: hot_aggregates */
	__u64 ready_addr;  /* a 4-byte variable, non-zero once a connection carries queries; 0: after one exchange */
	__u64 ignore_addr; /* a 1-byte variable, non-zero on connections never measured; 0: none */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct db_listener_key);
	__type(value, struct db_listener);
} db_listeners SEC(".maps");

/* A server's listening Unix socket: the file it is bound to. */
struct db_unix_key {
	__u64 ino; /* inode number of the socket file */
	__u32 dev; /* its file system's device, kernel dev_t */
	__u32 pad; /* always zero */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct db_unix_key);
	__type(value, struct db_listener);
} db_unix_listeners SEC(".maps");

/* Every port in db_listeners, whatever the namespace, as a bitmap: one
 * inlined array load turns away the sockets of every other program, before
 * any hash lookup. Bit p%64 of element p/64 is port p. Bit 0 (no TCP
 * socket has port 0) says that db_unix_listeners is not empty: Unix
 * sockets, whose port is 0, are looked at only then. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} db_ports SEC(".maps");

/* db_port reports whether some server listens on local port. */
static __always_inline int db_port(__u16 port)
{
	__u32 i = port >> 6;
	__u64 *bits = bpf_map_lookup_elem(&db_ports, &i);

	return bits && (*bits >> (port & 63)) & 1;
}

enum db_sock_state {
	DB_SOCK_NEW = 0,     /* connection setup: not measured yet */
	DB_SOCK_READY = 1,   /* every request is measured */
	DB_SOCK_IGNORED = 2, /* not a query connection */
};

/* One server connection. */
struct db_sock {
	__u64 start_ns; /* first receive of the request in flight, 0 none */
	__u64 buf;      /* user address the request landed at, 0 unknown */
	__u64 ready_addr;
	__u64 ignore_addr;
	__u32 instance;
	__u8 state;    /* enum db_sock_state */
	__u8 protocol; /* of the request in flight */
	__u16 slot;    /* the listener's */
};

/* The state of each database socket, kept with the socket itself (tp_btf
 * programs): found without hashing, and gone when the socket is. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct db_sock);
} db_sock_storage SEC(".maps");

/* The same for the classic tracepoint programs, which may not use socket
 * storage: keyed by the socket's address, evicted least recently used.
 * A socket freed and its memory reused within one request could inherit
 * a state; the fallback accepts that. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* struct sock pointer */
	__type(value, struct db_sock);
} db_socks SEC(".maps");

/* db_query_seconds of the first DB_HIST_INSTANCES servers, whose
 * listeners the collector gave a slot: one row of histogram buckets per
 * (slot, protocol), one copy per CPU. An observation is an inlined array
 * lookup and two adds on this CPU's cache lines, where a hash map costs
 * hashing its key and walking cold buckets (measured on this path: about
 * a third of the cost). Buckets are histo's from 1 us (below counts as
 * 1 us) to 2^38 ns (above counts in the last); the sum is exact. Servers
 * beyond the slots go to hot_aggregates. */
#define DB_HIST_INSTANCES 5
#define DB_HIST_PROTOCOLS 3         /* PROTOCOL_SIMPLE, _EXTENDED, _UNKNOWN */
#define DB_HIST_FIRST 320           /* histo_index(1024) */
#define DB_HIST_BUCKETS (2112 - 320) /* to histo_index(2^38 - 1) = 2111 */
#define DB_NO_SLOT 0xffff

struct db_hist_row {
	__u64 buckets[DB_HIST_BUCKETS];
	__u64 sum;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DB_HIST_INSTANCES * DB_HIST_PROTOCOLS);
	__type(key, __u32);
	__type(value, struct db_hist_row);
} db_hist SEC(".maps");

/* db_observe_as records one query of instance (its db_hist slot, or
 * DB_NO_SLOT) over protocol that took d ns. */
static __always_inline void db_observe_as(__u32 instance, __u16 slot, __u8 protocol, __u64 d)
{
	struct agg_key k = {};
	struct db_hist_row *h;
	__u32 row, b;

	if (slot < DB_HIST_INSTANCES && protocol < DB_HIST_PROTOCOLS) {
		row = slot * DB_HIST_PROTOCOLS + protocol;
		h = bpf_map_lookup_elem(&db_hist, &row);
		if (!h)
			return;
		b = histo_index(d);
		b = b < DB_HIST_FIRST ? 0 : b - DB_HIST_FIRST;
		if (b >= DB_HIST_BUCKETS)
			b = DB_HIST_BUCKETS - 1;
		/* Atomic even on this CPU's copy: a program preempting this
		 * one may add to the same row. */
		__sync_fetch_and_add(&h->buckets[b], 1);
		__sync_fetch_and_add(&h->sum, d);
		return;
	}
	k.signal = AGG_DB_QUERY_SECONDS;
	k.aux = instance;
	k.aux2 = protocol;
	agg_observe_hot(&k, d);
}

/* db_observe records one query of s that took d ns. */
static __always_inline void db_observe(const struct db_sock *s, __u64 d)
{
	db_observe_as(s->instance, s->slot, s->protocol, d);
}

/* Makes bpf2go emit Go types for the collector's side of the maps. */
const struct db_listener_key *unused_db_listener_key __attribute__((unused));
const struct db_listener *unused_db_listener __attribute__((unused));
const struct db_hist_row *unused_db_hist_row __attribute__((unused));
const struct db_unix_key *unused_db_unix_key __attribute__((unused));

/* request_protocol tells the protocol from a request's first byte. */
static __always_inline __u8 request_protocol(__u64 buf)
{
	char t = 0;

	if (!buf || bpf_probe_read_user(&t, 1, (void *)buf))
		return PROTOCOL_UNKNOWN;
	switch (t) {
	case 'Q':
		return PROTOCOL_SIMPLE;
	case 'P': case 'B': case 'E': case 'D': case 'S': case 'H': case 'C':
		return PROTOCOL_EXTENDED;
	}
	return PROTOCOL_UNKNOWN;
}

/* user_buffer returns where the current recvfrom/read puts its bytes. */
static __always_inline __u64 user_buffer(void)
{
	struct task_struct *task;
	struct pt_regs *regs;
	__u64 nr = 0, buf = 0;

	if (regs_nr_slot >= 64 || regs_buf_slot >= 64)
		return 0;
	task = bpf_get_current_task_btf();
	regs = (struct pt_regs *)bpf_task_pt_regs(task);
	if (!regs)
		return 0;
	if (bpf_probe_read_kernel(&nr, sizeof(nr), (void *)regs + regs_nr_slot * 8))
		return 0;
	nr &= 0xffffffff; /* arm64 keeps a 32-bit syscallno */
	if (nr != nr_recvfrom && nr != nr_read)
		return 0;
	if (bpf_probe_read_kernel(&buf, sizeof(buf), (void *)regs + regs_buf_slot * 8))
		return 0;
	return buf;
}

/* local_port returns sk's local port. tp_btf programs (btf set) read the
 * socket directly; classic tracepoints through probe reads. */
static __always_inline __u16 local_port(const struct sock *sk, int btf)
{
	return btf ? sk->__sk_common.skc_num : BPF_CORE_READ(sk, __sk_common.skc_num);
}

static __always_inline int inet_tcp(const struct sock *sk)
{
	__u16 family = sk->__sk_common.skc_family;

	return (family == AF_INET || family == AF_INET6) && sk->sk_protocol == IPPROTO_TCP;
}

/* unix_db_sock returns the state of Unix socket sk, made now: a server's
 * connection when the file it is bound to is a listener's of
 * db_unix_listeners, else a state that ignores it from now on (so that
 * the next receive costs one storage lookup, not this one). tp_btf only. */
static __always_inline struct db_sock *unix_db_sock(const struct sock *sk)
{
	struct db_unix_key k = {};
	struct db_sock fresh = {.state = DB_SOCK_IGNORED, .slot = DB_NO_SLOT};
	struct db_listener *l = 0;
	struct unix_sock *u = bpf_skc_to_unix_sock((void *)sk);
	struct dentry *d;

	if (!u)
		return 0;
	d = u->path.dentry;
	if (d && d->d_inode) {
		k.ino = d->d_inode->i_ino;
		k.dev = d->d_inode->i_sb->s_dev;
		l = bpf_map_lookup_elem(&db_unix_listeners, &k);
	}
	if (l) {
		fresh.state = DB_SOCK_NEW;
		fresh.instance = l->instance;
		fresh.slot = l->slot < DB_HIST_INSTANCES ? l->slot : DB_NO_SLOT;
		fresh.ready_addr = l->ready_addr;
		fresh.ignore_addr = l->ignore_addr;
	}
	return bpf_sk_storage_get(&db_sock_storage, (void *)sk, &fresh, BPF_LOCAL_STORAGE_GET_F_CREATE);
}

/* db_sock_of returns the state of database socket sk (whose local port
 * is one of db_ports); with create, it makes one for a socket of a known
 * server. */
static __always_inline struct db_sock *db_sock_of(const struct sock *sk, __u16 port, int btf, int create)
{
	struct db_listener_key lk = {};
	struct db_sock *s, fresh = {};
	struct db_listener *l;
	__u64 key = (__u64)sk;

	if (btf)
		s = bpf_sk_storage_get(&db_sock_storage, (void *)sk, 0, 0);
	else
		s = bpf_map_lookup_elem(&db_socks, &key);
	if (s || !create)
		return s;
	if (btf && sk->__sk_common.skc_family == AF_UNIX)
		return unix_db_sock(sk);
	if (btf && !inet_tcp(sk)) /* the classic tracepoint checked its record */
		return 0;
	lk.port = port;
	if (btf)
		lk.netns = sk->__sk_common.skc_net.net->ns.inum;
	else
		lk.netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	l = bpf_map_lookup_elem(&db_listeners, &lk);
	if (!l)
		return 0;
	fresh.instance = l->instance;
	fresh.slot = l->slot < DB_HIST_INSTANCES ? l->slot : DB_NO_SLOT;
	fresh.ready_addr = l->ready_addr;
	fresh.ignore_addr = l->ignore_addr;
	if (btf)
		return bpf_sk_storage_get(&db_sock_storage, (void *)sk, &fresh, BPF_LOCAL_STORAGE_GET_F_CREATE);
	bpf_map_update_elem(&db_socks, &key, &fresh, BPF_ANY);
	return bpf_map_lookup_elem(&db_socks, &key);
}

/* tcp_clock returns the time TCP last received or transmitted on sk
 * (tp_btf programs, kernels that keep it), else the clock's now. */
static __always_inline __u64 tcp_clock(const struct sock *sk, int btf)
{
	struct tcp_sock *tp;

	if (btf && bpf_core_field_exists(struct tcp_sock, tcp_clock_cache)) {
		tp = bpf_skc_to_tcp_sock((void *)sk);
		if (tp)
			return tp->tcp_clock_cache;
	}
	return bpf_ktime_get_ns();
}

/* on_recv notes the start of a request on a database socket. */
static __always_inline void on_recv(const struct sock *sk, int btf)
{
	__u16 port = local_port(sk, btf);
	struct db_sock *s;

	if (!db_port(port))
		return;
	s = db_sock_of(sk, port, btf, 1);
	if (!s || s->state == DB_SOCK_IGNORED || s->start_ns)
		return; /* not measured, or more of the request in flight */
	s->start_ns = tcp_clock(sk, btf);
	s->buf = 0;
	s->protocol = PROTOCOL_UNKNOWN;
	if (btf && s->state == DB_SOCK_READY) {
		s->buf = user_buffer();
		s->protocol = request_protocol(s->buf);
	}
}

/* settle decides, at the end of a connection-setup exchange, whether the
 * connection carries queries from now on. */
static __always_inline void settle(struct db_sock *s)
{
	__u32 ready = 1;
	__u8 ignore = 0;

	if (s->ignore_addr && !bpf_probe_read_user(&ignore, 1, (void *)s->ignore_addr) && ignore) {
		s->state = DB_SOCK_IGNORED;
		return;
	}
	if (s->ready_addr && bpf_probe_read_user(&ready, sizeof(ready), (void *)s->ready_addr))
		ready = 0;
	if (ready)
		s->state = DB_SOCK_READY;
}

/* slow_query_text finds the text of the request at buf: after the type
 * byte and length of a Query ('Q') message, or after the statement name of
 * a Parse ('P'); 0 for anything else. */
static __always_inline __u64 slow_query_text(__u64 buf, __u8 protocol)
{
	char head[38] = {};
	int i;

	if (!buf || protocol == PROTOCOL_UNKNOWN)
		return 0;
	if (bpf_probe_read_user(head, sizeof(head), (void *)buf))
		return 0;
	if (head[0] == 'Q')
		return buf + 5;
	if (head[0] != 'P')
		return 0;
	for (i = 5; i < (int)sizeof(head); i++)
		if (head[i] == 0)
			return buf + i + 1;
	return 0;
}

/* on_send ends the request in flight on a database socket, if any. */
static __always_inline void on_send(const struct sock *sk, int btf)
{
	__u16 port = local_port(sk, btf);
	__u64 now, d, text;
	struct query_event *e;
	struct db_sock *s;

	if (!db_port(port))
		return;
	s = db_sock_of(sk, port, btf, 0);
	if (!s || !s->start_ns)
		return;
	now = tcp_clock(sk, btf);
	if (now <= s->start_ns) /* nothing transmitted yet */
		now = bpf_ktime_get_ns();
	d = now - s->start_ns;
	s->start_ns = 0;
	if (s->state != DB_SOCK_READY) {
		if (s->state == DB_SOCK_NEW)
			settle(s);
		return;
	}
	db_observe(s, d);
	if (d < slow_query_ns)
		return;
	e = reserve_slow_query(s->instance, s->protocol, now, d);
	if (!e)
		return;
	e->text[0] = 0;
	text = slow_query_text(s->buf, s->protocol);
	if (text && bpf_probe_read_user_str(e->text, sizeof(e->text), (void *)text) < 0)
		e->text[0] = 0;
	bpf_ringbuf_submit(e, 0);
}

/* ---- 1. tp_btf: the socket, and the task's registers ---------------- */

SEC("tp_btf/sock_recv_length")
int BPF_PROG(db_sock_recv_btf, struct sock *sk, int ret, int flags)
{
	/* Whether sk is TCP is asked only of a database port's sockets (in
	 * db_sock_of): sk_protocol is on a cache line of its own, which
	 * the every other socket need not load. */
	if (ret <= 0 || (flags & MSG_PEEK) || !sk)
		return 0;
	on_recv(sk, 1);
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(db_sock_send_btf, struct sock *sk, int ret, int flags)
{
	if (ret <= 0 || !sk)
		return 0;
	on_send(sk, 1);
	return 0;
}

/* ---- 2. classic tracepoints: the record ----------------------------- */

SEC("tracepoint/sock/sock_recv_length")
int db_sock_recv_tp(struct trace_event_raw_sock_msg_length *rec)
{
	const struct sock *sk = (const struct sock *)rec->sk;

	if (rec->ret <= 0 || (rec->flags & MSG_PEEK) || !sk || rec->protocol != IPPROTO_TCP ||
	    (rec->family != AF_INET && rec->family != AF_INET6))
		return 0;
	on_recv(sk, 0);
	return 0;
}

SEC("tracepoint/sock/sock_send_length")
int db_sock_send_tp(struct trace_event_raw_sock_msg_length *rec)
{
	const struct sock *sk = (const struct sock *)rec->sk;

	if (rec->ret <= 0 || !sk)
		return 0;
	on_send(sk, 0);
	return 0;
}

/* ---- 3. cgroup_skb: only the server's packets ------------------------
 *
 * The socket tracepoints above fire for every recv and send of every
 * process on the host, and cost a few percent of a busy server even when
 * the program returns at once. A cgroup_skb program attached to the
 * cgroup (v2) a server runs in fires only for the packets of the sockets
 * created there: one run per packet the server receives or sends, none
 * for anyone else. The collector attaches db_skb_ingress and db_skb_egress
 * to a server's cgroup when that cgroup is not the root.
 *
 * The programs read PostgreSQL's wire protocol from the packets:
 *   - a connection's first packet is its startup message (or a TLS
 *     request): a replication connection (startup parameter replication,
 *     not false) is never measured; a TLS or GSS-encrypted one is
 *     measured from each request's first packet to the answer's first,
 *     protocol unknown, without text (its setup exchange counts too). A
 *     connection made before the programs were attached is measured from
 *     its first typed message on (a walsender's then never sends 'W':
 *     its CopyData does not start requests);
 *   - a request starts with the first packet the server receives while
 *     no request is in flight, if that packet begins with a query's
 *     message: Query ('Q', simple), or Parse, Bind, Execute, Describe,
 *     Sync, Flush or Close (extended); authentication and termination
 *     messages start nothing;
 *   - it ends with the packet the server sends whose last message is
 *     ReadyForQuery ('Z', length 5): the whole answer has left. A
 *     CopyBothResponse ('W') means streaming replication: the connection
 *     is ignored from then on.
 *
 * The request's arrival is the clock at ingress; the answer's departure
 * is the packet's own timestamp (TCP's departure time, the same clock),
 * or the clock when it has none. A Query's or Parse's text is copied from
 * the packet into the connection's storage; a slow query's event carries
 * it. Unix-socket connections have no packets: the tracepoints measure
 * them when the collector attaches those too.
 */

#define PG_TLS_CODE 80877103    /* SSLRequest */
#define PG_GSSENC_CODE 80877104 /* GSSENCRequest */
#define PG_CANCEL_CODE 80877102 /* CancelRequest */
#define PG_PROTOCOL_3 0x00030000
#define DB_CONN_OPAQUE 3  /* encrypted: request/answer by packets only */
#define DB_CONN_WAIT_ENC 4 /* sent SSLRequest/GSSENCRequest: see what follows */
#define DB_CONN_STARTUP_SCAN 128 /* bytes of the startup message looked at */

/* One server connection seen by the packet programs. */
struct db_conn {
	__u64 start_ns; /* arrival of the request in flight, 0 none */
	__u32 instance;
	__u16 slot;
	__u8 state;    /* enum db_sock_state, DB_CONN_OPAQUE or _WAIT_ENC */
	__u8 protocol; /* of the request in flight */
	__u8 text_skip; /* the text starts after a NUL-terminated name (Parse) */
	__u8 counted;   /* the request in flight is in db_sample's in-flight count */
	__u16 pad;
	__u32 gen;      /* db_sample's generation when the request began */
	char text[QUERY_TEXT_MAX]; /* of the request in flight, "" none */
};

/* Sampling of the packet path. When a server is busy, the collector
 * attaches db_skb_ingress for only a part of each interval (a window)
 * and keeps db_skb_egress attached until the requests that began in the
 * window have been answered; then it detaches both, and scales the
 * counts. Three u64 slots, written by the collector:
 *   DB_SAMPLE_GEN: bumped (while both programs are detached) before a
 *     window whose egress program was detached since the last one: a
 *     request begun in an earlier generation may have been answered
 *     unseen, so its start is stale (ingress starts afresh, egress
 *     forgets it);
 *   DB_SAMPLE_INFLIGHT: requests begun while DB_SAMPLE_ON and not yet
 *     answered (the collector zeroes it with each new generation);
 *   DB_SAMPLE_ON: non-zero while windows are in use.
 * While nothing is sampled, the generation never changes and nothing is
 * counted: every request is measured, as before. */
#define DB_SAMPLE_GEN 0
#define DB_SAMPLE_INFLIGHT 1
#define DB_SAMPLE_ON 2

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} db_sample SEC(".maps");

/* sample_slot returns slot i of db_sample (never NULL for the verifier's
 * sake: a missing slot reads as a zero of its own). */
static __always_inline __u64 *sample_slot(__u32 i)
{
	return bpf_map_lookup_elem(&db_sample, &i);
}

/* conn_begin starts a request on c now. */
static __always_inline void conn_begin(struct db_conn *c, __u32 gen)
{
	__u64 *on = sample_slot(DB_SAMPLE_ON), *inflight;

	c->gen = gen;
	c->counted = 0;
	if (on && *on) {
		inflight = sample_slot(DB_SAMPLE_INFLIGHT);
		if (inflight) {
			__sync_fetch_and_add(inflight, 1);
			c->counted = 1;
		}
	}
	c->start_ns = bpf_ktime_get_ns();
}

/* conn_end forgets c's request in flight; it was answered if it is
 * of generation gen (else it may have been answered unseen). */
static __always_inline void conn_end(struct db_conn *c, __u32 gen)
{
	__u64 *inflight;

	if (c->counted && c->gen == gen) {
		inflight = sample_slot(DB_SAMPLE_INFLIGHT);
		if (inflight)
			__sync_fetch_and_add(inflight, -1);
	}
	c->counted = 0;
	c->start_ns = 0;
}

/* sample_gen returns db_sample's current generation. */
static __always_inline __u32 sample_gen(void)
{
	__u64 *g = sample_slot(DB_SAMPLE_GEN);

	return g ? (__u32)*g : 0;
}

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct db_conn);
} db_conn_storage SEC(".maps");

/* tcp_payload returns the offset of sk's TCP payload in skb (whose data
 * starts at the network header in cgroup_skb programs), or -1. */
static __always_inline int tcp_payload(struct __sk_buff *skb)
{
	__u8 b = 0;
	int off;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		if (bpf_skb_load_bytes(skb, 0, &b, 1))
			return -1;
		off = (b & 0xf) * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		if (bpf_skb_load_bytes(skb, 6, &b, 1) || b != IPPROTO_TCP)
			return -1; /* extension headers: not looked into */
		off = 40;
	} else {
		return -1;
	}
	if (bpf_skb_load_bytes(skb, off + 12, &b, 1))
		return -1;
	return off + (b >> 4) * 4;
}

/* bounded_len returns n if it is at most max, else max; and 0 for 0.
 * mask+1 (a power of two) must be at least max: the verifier then sees
 * that a result other than 0 is within [1, mask+1], whatever clang does
 * with the compares. */
static __always_inline __u64 bounded_len(__u64 n, __u64 max, __u64 mask)
{
	if (n > max)
		n = max;
	if (n == 0)
		return 0;
	/* Keep clang from seeing that the mask changes nothing. */
	asm volatile("" : "+r"(n));
	return ((n - 1) & mask) + 1;
}

/* conn_new makes the state of a connection whose first packet the server
 * received: the listener's, or ignored if it is not a server's. */
static __always_inline struct db_conn *conn_new(struct __sk_buff *skb, struct bpf_sock *sk)
{
	struct db_listener_key lk = {};
	struct db_listener *l;
	struct db_conn *c;
	struct tcp_sock *tp;

	c = bpf_sk_storage_get(&db_conn_storage, sk, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!c)
		return 0;
	c->state = DB_SOCK_IGNORED;
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return c;
	lk.port = skb->local_port;
	lk.netns = ((struct sock *)tp)->__sk_common.skc_net.net->ns.inum;
	l = bpf_map_lookup_elem(&db_listeners, &lk);
	if (!l)
		return c;
	c->instance = l->instance;
	c->slot = l->slot < DB_HIST_INSTANCES ? l->slot : DB_NO_SLOT;
	c->state = DB_SOCK_NEW;
	return c;
}

/* startup decides from a connection's first message (at off, len bytes
 * of payload) whether its requests are measured. */
static __always_inline void startup(struct __sk_buff *skb, struct db_conn *c, int off, __u32 len)
{
	char buf[DB_CONN_STARTUP_SCAN] = {};
	__u64 n;
	__u32 code;
	int i;

	if (len < 8 || bpf_skb_load_bytes(skb, off, buf, 8))
		return;
	code = (__u8)buf[4] << 24 | (__u8)buf[5] << 16 | (__u8)buf[6] << 8 | (__u8)buf[7];
	if (code == PG_TLS_CODE || code == PG_GSSENC_CODE) {
		c->state = DB_CONN_WAIT_ENC;
		return;
	}
	if (code != PG_PROTOCOL_3) {
		c->state = DB_SOCK_IGNORED; /* cancel request, or not PostgreSQL */
		return;
	}
	/* Parameters: name\0value\0... after the 8-byte header. */
	c->state = DB_SOCK_READY;
	n = bounded_len(len - 8, sizeof(buf), sizeof(buf) - 1);
	if (!n || bpf_skb_load_bytes(skb, off + 8, buf, n))
		return;
	for (i = 0; i + 14 < (int)sizeof(buf); i++) {
		if ((i == 0 || buf[i - 1] == 0) && buf[i] == 'r' && buf[i + 1] == 'e' && buf[i + 2] == 'p' &&
		    buf[i + 3] == 'l' && buf[i + 4] == 'i' && buf[i + 5] == 'c' && buf[i + 6] == 'a' &&
		    buf[i + 7] == 't' && buf[i + 8] == 'i' && buf[i + 9] == 'o' && buf[i + 10] == 'n' &&
		    buf[i + 11] == 0) {
			/* false, off, no, 0 keep a normal connection */
			char v0 = buf[i + 12], v1 = buf[i + 13];

			if (!((v0 == 'f') || (v0 == 'o' && v1 == 'f') || (v0 == 'n' && v1 == 'o') || (v0 == '0' && v1 == 0)))
				c->state = DB_SOCK_IGNORED;
			break;
		}
	}
}

/* query_protocol tells a request's protocol from its first message type;
 * 0xff: not a query. */
static __always_inline __u8 query_protocol(char t)
{
	switch (t) {
	case 'Q':
		return PROTOCOL_SIMPLE;
	case 'P': case 'B': case 'E': case 'D': case 'S': case 'H': case 'C':
		return PROTOCOL_EXTENDED;
	}
	return 0xff;
}

SEC("cgroup_skb/ingress")
int db_skb_ingress(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;
	struct db_conn *c;
	int off;
	__u32 len;
	__u64 n;
	char t = 0;
	__u32 gen;
	__u8 p;

	if (!sk)
		return 1;
	gen = sample_gen();
	c = bpf_sk_storage_get(&db_conn_storage, sk, 0, 0);
	if (c && (c->state == DB_SOCK_IGNORED || (c->start_ns && c->gen == gen)))
		return 1; /* not measured, or more of the request in flight */
	off = tcp_payload(skb);
	if (off <= 0 || off >= skb->len)
		return 1; /* no payload: an ACK, a SYN, a FIN */
	len = skb->len - off;
	if (!c) {
		c = conn_new(skb, sk);
		if (!c || c->state == DB_SOCK_IGNORED)
			return 1;
	}
	if (bpf_skb_load_bytes(skb, off, &t, 1))
		return 1;
	switch (c->state) {
	case DB_CONN_WAIT_ENC:
		/* The server declined and the client goes on in plain text
		 * (or asks for TLS instead of GSS): a startup message. */
		if (t == 0) {
			startup(skb, c, off, len);
			return 1;
		}
		/* TLS records, or a typed message: the startup message went
		 * by while db_skb_ingress was detached (a sampling window
		 * closed between the encryption request and it, the backend's
		 * fork apart). Read as a connection seen first in the middle,
		 * not as a startup message (which left it ignored for life). */
		c->state = DB_SOCK_NEW;
		/* fall through */
	case DB_SOCK_NEW:
		if (t == 0) { /* a length's first byte: the startup message */
			startup(skb, c, off, len);
			return 1;
		}
		/* A connection made before the programs were attached, seen
		 * first in the middle: a typed message, or TLS records. */
		if (t != 0x16 && t != 0x17) {
			c->state = DB_SOCK_READY;
			break;
		}
		c->state = DB_CONN_OPAQUE;
		/* fall through */
	case DB_CONN_OPAQUE:
		if (t == 0x17) { /* TLS application data */
			c->protocol = PROTOCOL_UNKNOWN;
			c->text[0] = 0;
			conn_begin(c, gen);
		}
		return 1;
	}
	p = query_protocol(t);
	if (p == 0xff)
		return 1;
	c->protocol = p;
	c->text[0] = 0;
	c->text_skip = t == 'P';
	if ((t == 'Q' || t == 'P') && len > 5) {
		n = bounded_len(len - 5, QUERY_TEXT_MAX - 1, QUERY_TEXT_MAX - 1);
		if (n && !bpf_skb_load_bytes(skb, off + 5, c->text, n))
			c->text[n & (QUERY_TEXT_MAX - 1)] = 0;
		else
			c->text[0] = 0;
	}
	conn_begin(c, gen);
	return 1;
}

/* slow_conn_query reports the request in flight on c, which took d. */
static __always_inline void slow_conn_query(struct db_conn *c, __u64 now, __u64 d)
{
	struct query_event *e = reserve_slow_query(c->instance, c->protocol, now, d);
	int i, start = 0;

	if (!e)
		return;
	if (c->text_skip) {
		/* Parse: the statement's name, then its text. */
		start = -1;
		for (i = 0; i < 64; i++) {
			if (c->text[i] == 0) {
				start = i + 1;
				break;
			}
		}
	}
	e->text[0] = 0;
	if (start == 0)
		bpf_probe_read_kernel_str(e->text, sizeof(e->text), c->text);
	else if (start > 0 && start < 64)
		bpf_probe_read_kernel_str(e->text, sizeof(e->text) - 64, c->text + start);
	bpf_ringbuf_submit(e, 0);
}

SEC("cgroup_skb/egress")
int db_skb_egress(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;
	struct db_conn *c;
	__u64 now, d;
	int off;
	char tail[6] = {};
	char t = 0;
	__u32 gen;

	if (!sk)
		return 1;
	c = bpf_sk_storage_get(&db_conn_storage, sk, 0, 0);
	if (!c || !c->start_ns)
		return 1; /* not a server connection, or nothing asked */
	gen = sample_gen();
	if (c->gen != gen) {
		conn_end(c, gen); /* begun before a gap in sampling: stale */
		return 1;
	}
	off = tcp_payload(skb);
	if (off <= 0 || off >= skb->len)
		return 1;
	if (c->state == DB_SOCK_READY) {
		if (skb->len - off < 6 || bpf_skb_load_bytes(skb, skb->len - 6, tail, 6))
			return 1;
		if (tail[0] != 'Z' || tail[1] || tail[2] || tail[3] || tail[4] != 5) {
			if (!bpf_skb_load_bytes(skb, off, &t, 1) && t == 'W') {
				/* CopyBothResponse: streaming replication */
				c->state = DB_SOCK_IGNORED;
				conn_end(c, gen);
			}
			return 1; /* more of the answer to come */
		}
	}
	now = skb->tstamp;
	if (now <= c->start_ns)
		now = bpf_ktime_get_ns();
	d = now - c->start_ns;
	conn_end(c, gen);
	db_observe_as(c->instance, c->slot, c->protocol, d);
	if (d >= slow_query_ns)
		slow_conn_query(c, now, d);
	return 1;
}
