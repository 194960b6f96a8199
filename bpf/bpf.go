// Package bpf holds mciv's eBPF programs: the CO-RE C sources (*.bpf.c and
// headers/), and the Go bindings and objects bpf2go generates from them.
// The generated files are committed, so building mciv needs no clang;
// `go generate ./bpf` (make generate) rebuilds them and CI checks they are
// current.
//
// One object per probe family, compiled once for little-endian BPF: TCP
// (retransmits, resets, connects, RTT), Disk (block I/O latency), PG
// (PostgreSQL USDT probes) and MySQL (dispatch_command uprobes); HistoTest
// is a test-only program. The programs read kernel structs only through
// CO-RE relocations, and the uprobe programs learn where their arguments
// are from the attach cookie, so the same object serves amd64 and arm64.
// Every object includes headers/mciv_events.h (the shared events ring
// buffer and its drop counter) and headers/mciv_histo.h (the shared
// aggregates map of counters and log-linear histograms, whose bucketing
// is internal/histo's in C); a loader creates those maps once and passes
// them to each object as map replacements.
package bpf

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target bpfel -type sock_event -type agg_key -type agg_hist TCP tcp.bpf.c -- -I./headers -Wall -Werror
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target bpfel Disk disk.bpf.c -- -I./headers -Wall -Werror
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target bpfel -type query_event PG pg.bpf.c -- -I./headers -Wall -Werror
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target bpfel -type db_listener_key -type db_listener -type db_hist_row -type db_unix_key DBSock dbsock.bpf.c -- -I./headers -Wall -Werror
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target bpfel MySQL mysql.bpf.c -- -I./headers -Wall -Werror
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target bpfel -type steer_addr -type steer_target -type steer_backend -type steer_count_key Steer steer.bpf.c -- -I./headers -Wall -Werror
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target bpfel HistoTest histo_test.bpf.c -- -I./headers -Wall -Werror

// The generated tcp_bpfel.go names the programs and maps of the TCP object
// (TCPProg*, TCPMap*), its map key and record types (TCPRetransKey,
// TCPSockEvent) and returns its CollectionSpec (LoadTCP).

// Kinds of records in the events ring buffer: the first byte of every
// record (enum event_kind in headers/mciv_events.h).
const (
	// EventTCPRetransmit is a TCPSockEvent for one retransmitted segment.
	EventTCPRetransmit = 1
	// EventTCPResetSent is a TCPSockEvent for one reset this host sent.
	EventTCPResetSent = 2
	// EventTCPResetReceived is a TCPSockEvent for one reset a socket of
	// this host received.
	EventTCPResetReceived = 3
	// EventDBSlowQuery is a query event for one query slower than the
	// threshold.
	EventDBSlowQuery = 4
)

// Signals of the shared aggregates map (enum agg_signal in
// headers/mciv_histo.h): the Signal field of TCPAggKey.
const (
	AggTCPConnectSeconds    = 1
	AggTCPRTTSeconds        = 2
	AggDiskIOSeconds        = 3
	AggDBQuerySeconds       = 4
	AggTCPResetsSent        = 16
	AggTCPResetsReceived    = 17
	AggTCPConnectErrors     = 18
	AggSumBucket            = 0xffffffff // bucket of the key holding a histogram's sum
	DiskOpRead, DiskOpWrite = 0, 1
	DiskOpFlush             = 2
	DiskOpDiscard           = 3
)
