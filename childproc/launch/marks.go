//go:build linux

package launch

import (
	"errors"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// Marks say, in memory the keeper holds and so outlives a supervising program, whether
// a worker's streams may have been left in the middle of a frame: each is non-zero from
// before the first byte of a frame is read or written until after its last (package
// wire sets them, see wire.Reader.SetMark and wire.Writer.SetMarks). A supervisor that
// dies leaves them as they were; the next one adopts a worker only when every mark is
// zero, so that it never reads the rest of a frame as the start of another. A mark set
// a moment too long only costs a restart.
type Marks struct {
	mem []byte // the worker's slot in its keeper's page of marks
}

// The marks of all the workers of a keeper are one shared memory file, a slot each. A
// worker's slot is its number modulo marksSlots: it is used again only after that many
// later workers, long after anything of the earlier one could write to it.
const (
	marksSlot  = 64
	marksSlots = 1 << 16
	marksSize  = marksSlot * marksSlots
)

// The marks, by offset in a slot.
const (
	markControlRead = 0  // the supervisor reads a frame from the control socket
	markControlSend = 4  // it writes a frame to the control socket
	markControlBulk = 8  // it writes a fragmented frame to the control socket
	markLogsRead    = 12 // it reads a frame from the log socket
	marksEnd        = 16 // the counters follow, 8 bytes each
	marksCounters   = 3
)

// ControlRead is the mark of the control socket's reader.
func (m *Marks) ControlRead() *atomic.Uint32 { return m.at(markControlRead) }

// ControlWrite is the mark of the control socket's writer, for a frame.
func (m *Marks) ControlWrite() *atomic.Uint32 { return m.at(markControlSend) }

// ControlBulk is the mark of the control socket's writer, for a fragmented frame.
func (m *Marks) ControlBulk() *atomic.Uint32 { return m.at(markControlBulk) }

// LogsRead is the mark of the log socket's reader.
func (m *Marks) LogsRead() *atomic.Uint32 { return m.at(markLogsRead) }

// Cut reports whether a stream may be cut mid-frame: a mark is set.
func (m *Marks) Cut() bool {
	for off := 0; off < marksEnd; off += 4 {
		if m.at(off).Load() != 0 {
			return true
		}
	}
	return false
}

// Counter is one of three counters (i is 0, 1 or 2) a supervising program keeps beside
// the marks, zero when the process starts, for the program that adopts it to go on
// from (procsup's process actor keeps its counts of the child's log records there).
func (m *Marks) Counter(i int) *atomic.Uint64 {
	if i < 0 || i >= marksCounters {
		panic("procsup/launch: no such counter")
	}
	return (*atomic.Uint64)(unsafe.Pointer(&m.mem[marksEnd+8*i]))
}

func (m *Marks) at(off int) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&m.mem[off]))
}

// marksPage is a keeper's page of marks, mapped.
type marksPage []byte

// slot returns the marks of worker id.
func (p marksPage) slot(id uint64) *Marks {
	if p == nil {
		return nil
	}
	off := int(id%marksSlots) * marksSlot
	return &Marks{mem: p[off : off+marksSlot : off+marksSlot]}
}

// newMarks makes the shared page, zeroed, as an anonymous memory file.
func newMarks() (*os.File, error) {
	nr, ok := map[string]uintptr{"amd64": 319, "arm64": 279, "386": 356, "arm": 385, "riscv64": 279, "ppc64le": 360, "s390x": 350}[runtime.GOARCH]
	if !ok {
		return nil, errors.New("procsup/launch: memfd_create is not known on " + runtime.GOARCH)
	}
	name := []byte("procsup-marks\x00")
	fd, _, errno := syscall.Syscall(nr, uintptr(unsafe.Pointer(&name[0])), 1 /* MFD_CLOEXEC */, 0)
	if errno != 0 {
		return nil, os.NewSyscallError("memfd_create", errno)
	}
	if err := syscall.Ftruncate(int(fd), marksSize); err != nil {
		syscall.Close(int(fd))
		return nil, os.NewSyscallError("ftruncate", err)
	}
	return os.NewFile(fd, fdMarks), nil
}

// mapMarks maps the page of f, for as long as the program lives (a late write of a mark
// must never find it gone).
func mapMarks(f *os.File) (marksPage, error) {
	mem, err := syscall.Mmap(int(f.Fd()), 0, marksSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, os.NewSyscallError("mmap", err)
	}
	return marksPage(mem), nil
}
