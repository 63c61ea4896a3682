//go:build !linux

package launch

// procsup starts processes with what Linux gives (pidfd, the parent-death signal, /proc):
// it builds on Linux only. On another system the build stops here, with this name in its
// one error.
var _ = procsup_builds_on_linux_only
