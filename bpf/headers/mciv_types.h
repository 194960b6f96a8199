/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * mciv_types.h: the few kernel types mciv's probes use, written by hand
 * instead of a generated vmlinux.h.
 *
 * Every kernel struct carries preserve_access_index, so clang emits CO-RE
 * relocations for each field access. The loader (cilium/ebpf) matches the
 * struct and field *names* against the running kernel's BTF and patches the
 * offsets, so only the fields a probe reads need to be listed here and
 * their order and padding do not have to match the kernel. Adding a probe
 * means adding the fields it reads to the structs below (or a new struct).
 *
 * Nothing here is architecture specific, so one little-endian object serves
 * amd64 and arm64 alike.
 */
#ifndef MCIV_TYPES_H
#define MCIV_TYPES_H

/* Fixed-size integer types, as the UAPI headers name them. */
typedef signed char __s8;
typedef unsigned char __u8;
typedef short __s16;
typedef unsigned short __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;

/* Map types and update flags from the BPF UAPI (include/uapi/linux/bpf.h). */
enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_HASH = 5,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_LRU_PERCPU_HASH = 10,
	BPF_MAP_TYPE_SK_STORAGE = 24,
	BPF_MAP_TYPE_RINGBUF = 27,
};

/* Map flags and local storage flags from the BPF UAPI. */
#define BPF_F_NO_PREALLOC (1U << 0)
#define BPF_LOCAL_STORAGE_GET_F_CREATE 1

enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
	BPF_EXIST = 2,
};

/* Address families (include/linux/socket.h). */
#define AF_INET 2
#define AF_INET6 10

/* Error numbers the probes compare against. */
#define EEXIST 17

/* ---- networking ------------------------------------------------------- */

struct in6_addr {
	union {
		__u8 u6_addr8[16];
		__be16 u6_addr16[8];
		__be32 u6_addr32[4];
	} in6_u;
} __attribute__((preserve_access_index));

/* A namespace's identity: inum is the inode number that
 * /proc/PID/ns/net shows (include/linux/ns_common.h). */
struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));

/* A network namespace (include/net/net_namespace.h). */
struct net {
	struct ns_common ns;
} __attribute__((preserve_access_index));

/* The socket's network namespace pointer (include/net/net_namespace.h). */
typedef struct {
	struct net *net;
} __attribute__((preserve_access_index)) possible_net_t;

/* The address and port part of every socket (include/net/sock.h). */
struct sock_common {
	union {
		struct {
			__be32 skc_daddr;     /* peer IPv4 address */
			__be32 skc_rcv_saddr; /* local IPv4 address */
		};
	};
	union {
		struct {
			__be16 skc_dport; /* peer port, network byte order */
			__u16 skc_num;    /* local port, host byte order */
		};
	};
	unsigned short skc_family;
	volatile unsigned char skc_state;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
	possible_net_t skc_net; /* network namespace */
} __attribute__((preserve_access_index));

/* ---- Unix sockets ---------------------------------------------------- */

#define AF_UNIX 1

struct super_block {
	__u32 s_dev; /* the file system's device, kernel dev_t */
} __attribute__((preserve_access_index));

struct inode {
	unsigned long i_ino;
	struct super_block *i_sb;
} __attribute__((preserve_access_index));

struct dentry {
	struct inode *d_inode;
} __attribute__((preserve_access_index));

struct path {
	struct dentry *dentry;
} __attribute__((preserve_access_index));

/* A Unix socket (include/net/af_unix.h): the file it is bound to. A
 * connection a server accepted shares its listener's path. */
struct unix_sock {
	struct path path;
} __attribute__((preserve_access_index));

/* ---- control groups --------------------------------------------------- */

/* A cgroup's id is the inode number of its directory in the cgroup file
 * system (include/linux/kernfs.h: 64 bits since Linux 5.5). */
struct kernfs_node {
	__u64 id;
} __attribute__((preserve_access_index));

struct cgroup {
	struct kernfs_node *kn;
} __attribute__((preserve_access_index));

struct cgroup_subsys_state {
	struct cgroup *cgroup;
} __attribute__((preserve_access_index));

/* The cgroup (v2) a socket was created in (include/linux/cgroup-defs.h). */
struct sock_cgroup_data {
	struct cgroup *cgroup;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
	__u16 sk_protocol;
	struct sock_cgroup_data sk_cgrp_data;
} __attribute__((preserve_access_index));

/* TCP state of a socket (include/linux/tcp.h). */
struct tcp_sock {
	__u32 srtt_us;         /* smoothed RTT in microseconds, shifted left by 3 */
	__u64 tcp_clock_cache; /* the last tcp_clock_ns(): CLOCK_MONOTONIC when TCP last received or transmitted */
	__u32 segs_in;         /* segments received */
} __attribute__((preserve_access_index));

#define IPPROTO_TCP 6

/* TCP states (include/net/tcp_states.h). */
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_CLOSE 7

/* ---- block layer ------------------------------------------------------- */

struct gendisk {
	int major;
	int first_minor;
} __attribute__((preserve_access_index));

struct request_queue {
	struct gendisk *disk;
} __attribute__((preserve_access_index));

/* The io controller's state of a cgroup (block/blk-cgroup.h). */
struct blkcg {
	struct cgroup_subsys_state css;
} __attribute__((preserve_access_index));

struct blkcg_gq {
	struct blkcg *blkcg;
} __attribute__((preserve_access_index));

/* A block I/O: the cgroup it is charged to (CONFIG_BLK_CGROUP). */
struct bio {
	struct blkcg_gq *bi_blkg;
} __attribute__((preserve_access_index));

struct request {
	struct request_queue *q;
	__u32 cmd_flags; /* blk_opf_t: the low 8 bits are the operation */
	struct bio *bio;
} __attribute__((preserve_access_index));

/* Block operations (include/linux/blk_types.h, enum req_op). */
#define REQ_OP_MASK 0xff
#define REQ_OP_READ 0
#define REQ_OP_WRITE 1
#define REQ_OP_FLUSH 2
#define REQ_OP_DISCARD 3

/* A network device (include/linux/netdevice.h): its namespace. */
struct net_device {
	possible_net_t nd_net;
} __attribute__((preserve_access_index));

/* A packet (include/linux/skbuff.h): the device it arrived on. */
struct sk_buff {
	struct net_device *dev;
} __attribute__((preserve_access_index));

/* The context of socket filter and cgroup_skb programs, from the BPF UAPI
 * (include/uapi/linux/bpf.h). Not a kernel struct: the verifier rewrites
 * each access by its offset, so this layout must be the UAPI's exactly. */
struct bpf_sock;
struct bpf_flow_keys;
#define __bpf_md_ptr(type, name) \
	union {                  \
		type name;       \
		__u64 : 64;      \
	} __attribute__((aligned(8)))

struct __sk_buff {
	__u32 len;
	__u32 pkt_type;
	__u32 mark;
	__u32 queue_mapping;
	__u32 protocol;
	__u32 vlan_present;
	__u32 vlan_tci;
	__u32 vlan_proto;
	__u32 priority;
	__u32 ingress_ifindex;
	__u32 ifindex;
	__u32 tc_index;
	__u32 cb[5];
	__u32 hash;
	__u32 tc_classid;
	__u32 data;
	__u32 data_end;
	__u32 napi_id;
	__u32 family;
	__u32 remote_ip4;
	__u32 local_ip4;
	__u32 remote_ip6[4];
	__u32 local_ip6[4];
	__u32 remote_port;
	__u32 local_port; /* host byte order */
	__u32 data_meta;
	__bpf_md_ptr(struct bpf_flow_keys *, flow_keys);
	__u64 tstamp;
	__u32 wire_len;
	__u32 gso_segs;
	__bpf_md_ptr(struct bpf_sock *, sk);
	__u32 gso_size;
	__u8 tstamp_type;
	__u32 : 24;
	__u64 hwtstamp;
};

/* EtherTypes (include/uapi/linux/if_ether.h), host byte order. */
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

/* ---- tasks ----------------------------------------------------------- */

struct task_struct {
	struct task_struct *real_parent;
	int tgid;
} __attribute__((preserve_access_index));

/* ---- classic tracepoint records ----------------------------------------
 *
 * The context of a classic tracepoint program is the record the tracepoint
 * writes, laid out as /sys/kernel/tracing/events/<group>/<name>/format says.
 * Its BTF type is trace_event_raw_<class>. The verifier only allows aligned
 * loads straight from the context pointer, so read fields one by one.
 */

struct trace_entry {
	unsigned short type;
	unsigned char flags;
	unsigned char preempt_count;
	int pid;
} __attribute__((preserve_access_index));

/* tcp:tcp_retransmit_skb since Linux 6.x has its own event class ... */
struct trace_event_raw_tcp_retransmit_skb {
	struct trace_entry ent;
	const void *skbaddr;
	const void *skaddr;
	int state;
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u8 saddr[4];
	__u8 daddr[4];
	__u8 saddr_v6[16];
	__u8 daddr_v6[16];
} __attribute__((preserve_access_index));

/* ... older kernels share the tcp_event_sk_skb class with tcp_send_reset. */
struct trace_event_raw_tcp_event_sk_skb {
	struct trace_entry ent;
	const void *skbaddr;
	const void *skaddr;
	int state;
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u8 saddr[4];
	__u8 daddr[4];
	__u8 saddr_v6[16];
	__u8 daddr_v6[16];
} __attribute__((preserve_access_index));

/* tcp:tcp_send_reset and tcp:tcp_probe store addresses as a struct
 * sockaddr_in or sockaddr_in6 in 28 bytes. */
struct trace_event_raw_tcp_send_reset {
	struct trace_entry ent;
	const void *skbaddr;
	const void *skaddr;
	int state;
	__u8 saddr[28];
	__u8 daddr[28];
} __attribute__((preserve_access_index));

struct trace_event_raw_tcp_event_sk {
	struct trace_entry ent;
	const void *skaddr;
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u8 saddr[4];
	__u8 daddr[4];
	__u8 saddr_v6[16];
	__u8 daddr_v6[16];
} __attribute__((preserve_access_index));

struct trace_event_raw_tcp_probe {
	struct trace_entry ent;
	const void *skaddr; /* not in every kernel's record */
	__u8 saddr[28];
	__u8 daddr[28];
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u32 srtt; /* microseconds, already shifted */
} __attribute__((preserve_access_index));

struct trace_event_raw_inet_sock_set_state {
	struct trace_entry ent;
	const void *skaddr;
	int oldstate;
	int newstate;
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u16 protocol;
	__u8 saddr[4];
	__u8 daddr[4];
	__u8 saddr_v6[16];
	__u8 daddr_v6[16];
} __attribute__((preserve_access_index));

/* sock:sock_recv_length and sock:sock_send_length. */
struct trace_event_raw_sock_msg_length {
	struct trace_entry ent;
	void *sk;
	__u16 family;
	__u16 protocol;
	int ret;
	int flags;
} __attribute__((preserve_access_index));

/* block:block_rq_issue and block:block_rq_complete share these fields. */
struct trace_event_raw_block_rq {
	struct trace_entry ent;
	__u32 dev;
	__u64 sector;
	char rwbs[10];
} __attribute__((preserve_access_index));

struct trace_event_raw_block_rq_completion {
	struct trace_entry ent;
	__u32 dev;
	__u64 sector;
	char rwbs[10];
} __attribute__((preserve_access_index));

#endif /* MCIV_TYPES_H */
