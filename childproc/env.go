//go:build linux

package childproc

// Environment variables a child reads.
const (
	// EnvFDs names the child's control and log descriptors, as "3,4".
	EnvFDs = "PROCSUP_FDS"
	// EnvEntry names the registered entry point a re-executed binary runs (see [Register]).
	EnvEntry = "PROCSUP_ENTRY"
)
