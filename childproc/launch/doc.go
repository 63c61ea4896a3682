// Package launch starts child processes for procsup: the parent's side of
// package childproc.
//
// [Start] makes the two socket pairs (control and logs), has a [Launcher] (usually a
// [Command]) start the child with its ends as descriptors 3 and 4, and returns a
// [Process]. The child runs in its own process group with a parent-death signal, so
// [Process.Kill] ends the child and its descendants, and the child dies with the parent.
// Every child is started from one goroutine locked to one OS thread, because the
// parent-death signal follows the thread that forked; waiting for the exit uses a pidfd
// in the netpoller, so no thread is held per child. [SelfCommand] starts this same
// binary as a child program registered with childproc.Register.
//
// A [Keeper] ([OpenKeeper]) is a small process that outlives this program and starts
// children for it ([Kept]): it is their parent, so they survive this program's death, and
// the next program to open the keeper of the same name adopts them ([Keeper.Adopt]).
// [Marks] in the keeper's memory tell whether this program left a stream in the middle
// of a frame.
package launch
