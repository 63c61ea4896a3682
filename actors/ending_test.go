package actors

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/procsup/procsup/childproc/launch"
	"github.com/procsup/procsup/messages"
	"github.com/procsup/procsup/messages/wire"
)

// classify decides every ending from its facts alone: one row per line of the README's
// "What happens when" table that names a reason, and the edges between them.
func TestClassifyEndings(t *testing.T) {
	exit := func(code int) launch.ExitStatus { return launch.ExitStatus{Code: code} }
	signalled := func(s syscall.Signal) launch.ExitStatus { return launch.ExitStatus{Code: -1, Signal: s} }
	verdictErr := errors.New("the verdict's detail")
	cases := []struct {
		name    string
		facts   endFacts
		want    messages.Reason
		wantErr string // a substring of the error, "" for none, "verdict" for verdictErr
	}{
		{"exits by itself, code ≠ 0", endFacts{started: true, ran: true, status: exit(3)},
			messages.ReasonCrashed, ""},
		{"exits by itself on a signal", endFacts{started: true, ran: true, status: signalled(syscall.SIGSEGV)},
			messages.ReasonCrashed, ""},
		{"exits 0 by itself", endFacts{started: true, ran: true, status: exit(0)},
			messages.ReasonExited, ""},
		{"exits 0 by itself, closing its socket first", endFacts{started: true, ran: true, status: exit(0), eof: true,
			verdict: messages.ReasonProtocolError, verdictErr: verdictErr}, messages.ReasonExited, ""},
		{"panics in Run: its last word is the error", endFacts{started: true, ran: true, status: exit(70),
			lastWord: &wire.Exiting{Reason: "panic", Panic: "boom"}}, messages.ReasonCrashed, "child: panic"},
		{"fails its initialization", endFacts{started: true, status: exit(1),
			verdict: messages.ReasonInitFailed, verdictErr: verdictErr}, messages.ReasonInitFailed, "verdict"},
		{"does not initialize in time", endFacts{started: true, status: signalled(syscall.SIGKILL), killSent: true,
			verdict: messages.ReasonInitTimeout, verdictErr: verdictErr}, messages.ReasonInitTimeout, "verdict"},
		{"exits before its InitializeResponse, code 0", endFacts{started: true, status: exit(0)},
			messages.ReasonInitFailed, "exited before initializing"},
		{"exits before its InitializeResponse while its timeout's kill is on its way",
			endFacts{started: true, status: exit(2), killSent: true, verdict: messages.ReasonInitTimeout},
			messages.ReasonInitFailed, "exited before initializing"},
		{"hangs", endFacts{started: true, ran: true, status: signalled(syscall.SIGKILL), killSent: true,
			verdict: messages.ReasonUnresponsive, verdictErr: verdictErr}, messages.ReasonUnresponsive, "verdict"},
		{"hangs, then exits by itself before the kill lands", endFacts{started: true, ran: true, status: exit(1),
			killSent: true, verdict: messages.ReasonUnresponsive}, messages.ReasonCrashed, ""},
		{"grows past MemoryLimitMB", endFacts{started: true, ran: true, status: signalled(syscall.SIGKILL),
			killSent: true, verdict: messages.ReasonMemoryLimit, verdictErr: verdictErr}, messages.ReasonMemoryLimit, "verdict"},
		{"writes garbage", endFacts{started: true, ran: true, status: signalled(syscall.SIGKILL), killSent: true,
			verdict: messages.ReasonProtocolError, verdictErr: verdictErr}, messages.ReasonProtocolError, "verdict"},
		{"closes its socket and lives on", endFacts{started: true, ran: true, status: signalled(syscall.SIGKILL),
			killSent: true, eof: true, verdict: messages.ReasonProtocolError, verdictErr: verdictErr},
			messages.ReasonProtocolError, "verdict"},
		{"stops reading its control socket", endFacts{started: true, ran: true, status: signalled(syscall.SIGKILL),
			killSent: true, verdict: messages.ReasonProtocolError, verdictErr: ErrChildNotReading},
			messages.ReasonProtocolError, ErrChildNotReading.Error()},
		{"is killed by the OOM killer", endFacts{started: true, ran: true, status: signalled(syscall.SIGKILL), oomKills: 1},
			messages.ReasonOOMKilled, "OOM killer"},
		{"is killed by the OOM killer while initializing", endFacts{started: true, status: signalled(syscall.SIGKILL), oomKills: 2},
			messages.ReasonOOMKilled, "2 process(es)"},
		{"is killed by procsup in a cgroup that saw an OOM kill", endFacts{started: true, ran: true,
			status: signalled(syscall.SIGKILL), killSent: true, oomKills: 1, verdict: messages.ReasonKilled},
			messages.ReasonKilled, ""},
		{"is asked to close and exits", endFacts{started: true, ran: true, status: exit(0), verdict: messages.ReasonClosed},
			messages.ReasonClosed, ""},
		{"is asked to close and is killed after CloseTimeout", endFacts{started: true, ran: true,
			status: signalled(syscall.SIGKILL), killSent: true, verdict: messages.ReasonClosed}, messages.ReasonClosed, ""},
		{"is killed on request", endFacts{started: true, ran: true, status: signalled(syscall.SIGKILL), killSent: true,
			verdict: messages.ReasonKilled}, messages.ReasonKilled, ""},
		{"is stopped while it initializes", endFacts{started: true, status: exit(0), verdict: messages.ReasonClosed},
			messages.ReasonClosed, ""},
		{"is closed while it waits for a start slot", endFacts{verdict: messages.ReasonClosed},
			messages.ReasonClosed, ""},
		{"cannot be started", endFacts{verdict: messages.ReasonStartFailed, verdictErr: verdictErr},
			messages.ReasonStartFailed, "verdict"},
		{"answers a stack dump's SIGQUIT by exiting 2", endFacts{started: true, ran: true, status: exit(2),
			killSent: true, stackDump: true, verdict: messages.ReasonUnresponsive}, messages.ReasonUnresponsive, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reason, err := classify(c.facts)
			if reason != c.want {
				t.Errorf("reason %q, want %q", reason, c.want)
			}
			switch {
			case c.wantErr == "" && err != nil && !errors.Is(err, c.facts.verdictErr):
				t.Errorf("error %v, want none", err)
			case c.wantErr == "verdict" && !errors.Is(err, verdictErr):
				t.Errorf("error %v, want the verdict's", err)
			case c.wantErr != "" && c.wantErr != "verdict" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Errorf("error %v, want one saying %q", err, c.wantErr)
			}
		})
	}
}

// isFailure: what an end under each restart policy hands to the strategy.
func TestIsFailure(t *testing.T) {
	cases := []struct {
		reason messages.Reason
		policy RestartPolicy
		want   bool
	}{
		{messages.ReasonCrashed, Permanent, true},
		{messages.ReasonExited, Permanent, true},
		{messages.ReasonExited, Transient, false},
		{messages.ReasonCrashed, Transient, true},
		{messages.ReasonInitFailed, Transient, true},
		{messages.ReasonCrashed, Temporary, false},
		{messages.ReasonClosed, Permanent, false},
		{messages.ReasonKilled, Permanent, false},
	}
	for _, c := range cases {
		if got := isFailure(c.reason, c.policy); got != c.want {
			t.Errorf("isFailure(%q, %v) = %v, want %v", c.reason, c.policy, got, c.want)
		}
	}
}
