package launch

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Alive reports whether pid is a process that exists and has not exited: a zombie,
// dead but not yet reaped, is not alive.
func Alive(pid int) bool {
	f, ok := statFields(strconv.Itoa(pid))
	return ok && live(f)
}

// statFields returns the fields of /proc/<pid>/stat after the command name: state,
// ppid, pgrp, ...
func statFields(pid string) ([]string, bool) {
	st, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return nil, false
	}
	s := string(st)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, false
	}
	f := strings.Fields(s[i+1:])
	return f, len(f) >= 3
}

func live(f []string) bool { return f[0] != "Z" && f[0] != "X" }

// groupHasLiveMember reports whether process group pgid has a member that is not a
// zombie. The fast answer comes from kill(-pgid, 0); only a group that still exists is
// looked for in /proc.
func groupHasLiveMember(pgid int) bool {
	if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	dir, err := os.Open("/proc")
	if err != nil {
		return false
	}
	defer dir.Close()
	names, _ := dir.Readdirnames(-1)
	for _, name := range names {
		if name[0] < '0' || name[0] > '9' {
			continue
		}
		f, ok := statFields(name)
		if !ok || !live(f) {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid {
			return true
		}
	}
	return false
}
