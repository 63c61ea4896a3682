package launch

import (
	"os"
	"syscall"
	"unsafe"
)

const (
	sysPidfdOpen = 434 // the same number on every Linux architecture
	pPidfd       = 3   // idtype P_PIDFD for waitid
)

// openPidfd returns a non-blocking pidfd for pid as a pollable file, so that waiting for
// the exit parks a goroutine in the netpoller instead of holding an OS thread in wait(2).
// It returns nil where the kernel has no pidfd (before Linux 5.3).
func openPidfd(pid int) *os.File {
	fd, _, errno := syscall.Syscall(sysPidfdOpen, uintptr(pid), 0, 0)
	if errno != 0 {
		return nil
	}
	syscall.CloseOnExec(int(fd))
	if err := syscall.SetNonblock(int(fd), true); err != nil {
		syscall.Close(int(fd))
		return nil
	}
	return os.NewFile(fd, "pidfd")
}

// waitPidfd blocks the calling goroutine, not its thread, until the process behind f has
// exited. It does not reap the process.
func waitPidfd(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	err = rc.Read(func(fd uintptr) bool {
		var info [128]byte // siginfo_t; si_pid (offset 16) stays 0 while nothing has exited
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPidfd, fd, uintptr(unsafe.Pointer(&info[0])),
			syscall.WEXITED|syscall.WNOHANG|0x01000000 /* WNOWAIT */, 0, 0)
		if errno == syscall.EINTR {
			return false
		}
		if errno != 0 {
			werr = errno
			return true
		}
		return *(*int32)(unsafe.Pointer(&info[16])) != 0
	})
	if err != nil {
		return err
	}
	return werr
}
