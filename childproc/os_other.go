//go:build !linux

package childproc

// procsup supervises processes with what Linux gives (pidfd, the parent-death signal,
// /proc, cgroups): it builds on Linux only. On another system the build stops here, with
// this name in its one error.
var _ = procsup_builds_on_linux_only
