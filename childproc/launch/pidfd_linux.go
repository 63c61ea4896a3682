package launch

import (
	"os"
	"syscall"
	"unsafe"
)

const (
	sysPidfdOpen       = 434 // the same number on every Linux architecture
	sysPidfdSendSignal = 424
	pPidfd             = 3 // idtype P_PIDFD for waitid
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

// pidfdSignal sends sig to the process behind f: never to another process that took its
// pid after it was reaped.
func pidfdSignal(f *os.File, sig syscall.Signal) error {
	if f == nil {
		return os.ErrProcessDone
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	rc.Control(func(fd uintptr) {
		if _, _, errno := syscall.Syscall6(sysPidfdSendSignal, fd, uintptr(sig), 0, 0, 0, 0); errno != 0 {
			serr = errno
		}
	})
	if serr == syscall.ESRCH {
		return os.ErrProcessDone
	}
	return serr
}

// pollPidfd blocks the calling goroutine, not its thread, until the process behind f
// has exited; f need not be of a child of this program.
func pollPidfd(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Read(func(fd uintptr) bool {
		pfd := []struct {
			fd             int32
			events, revent int16
		}{{int32(fd), 1 /* POLLIN */, 0}}
		n, _, _ := syscall.Syscall(syscall.SYS_POLL, uintptr(unsafe.Pointer(&pfd[0])), 1, 0)
		return n > 0
	})
}
