package actors

import "github.com/procsup/procsup/childproc"

// LauncherForTest is a valid launcher that is never started.
func LauncherForTest() childproc.Launcher { return &childproc.Command{Path: "/bin/true"} }
