package node

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
)

// Load is what a node publishes about itself in membership, for placement.
type Load struct {
	Workers  int    `json:"w"` // workers it holds, starting ones included
	Starting int    `json:"s"` // of those, not yet running
	FreeMB   uint64 `json:"f"` // memory available on its machine (MemAvailable), in MiB
	Seq      uint64 `json:"q"` // increases with every change, so a newer figure wins
}

// meta is a node's membership metadata: its schema version first, then where to reach
// it and what it offers. memberlist carries at most 512 bytes of it.
type meta struct {
	Schema int      `json:"v"`
	Remote string   `json:"a"`
	Specs  []string `json:"p,omitempty"`
	Load   Load     `json:"l"`
	// Boot tells one start of a node from the next on the same name and address: a
	// restart is a leave and a join, its load taken fresh.
	Boot string `json:"b,omitempty"`
}

// newBoot returns a boot id: random, 8 bytes in hex.
func newBoot() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// metaLimit is memberlist's MetaMaxSize.
const metaLimit = 512

// decodeMeta reads a peer's metadata and checks its schema version: an error wrapping
// ErrSchemaMismatch for another version, or one saying the metadata is unreadable.
func decodeMeta(b []byte, want int) (meta, error) {
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%w: unreadable membership metadata (%d bytes): %v", ErrSchemaMismatch, len(b), err)
	}
	if m.Schema != want {
		return m, fmt.Errorf("%w: version %d, this node speaks %d", ErrSchemaMismatch, m.Schema, want)
	}
	if m.Remote == "" {
		return m, fmt.Errorf("%w: metadata without a remote address", ErrSchemaMismatch)
	}
	return m, nil
}

// freeMB reads MemAvailable from /proc/meminfo, in MiB (0 where it cannot).
func freeMB() uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) >= 2 && string(f[0]) == "MemAvailable:" {
			kb, _ := strconv.ParseUint(string(f[1]), 10, 64)
			return kb / 1024
		}
	}
	return 0
}
