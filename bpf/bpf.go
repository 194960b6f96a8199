// Package bpf holds mciv's eBPF programs: the CO-RE C sources (*.bpf.c and
// headers/), and the Go bindings and objects bpf2go generates from them.
// The generated files are committed, so building mciv needs no clang;
// `go generate ./bpf` (make generate) rebuilds them and CI checks they are
// current.
//
// One object per probe family (TCP today), compiled once for little-endian
// BPF: the programs read kernel structs only through CO-RE relocations and
// use no architecture-specific registers, so the same object serves amd64
// and arm64. Every object includes headers/mciv_events.h, which defines the
// shared events ring buffer and its drop counter; a loader creates those
// maps once and passes them to each object as map replacements.
package bpf

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target bpfel -type sock_event TCP tcp.bpf.c -- -I./headers -Wall -Werror

// The generated tcp_bpfel.go names the programs and maps of the TCP object
// (TCPProg*, TCPMap*), its map key and record types (TCPRetransKey,
// TCPSockEvent) and returns its CollectionSpec (LoadTCP).

// Kinds of records in the events ring buffer: the first byte of every
// record (enum event_kind in headers/mciv_events.h).
const (
	// EventTCPRetransmit is a TCPSockEvent for one retransmitted segment.
	EventTCPRetransmit = 1
)
