//go:build !linux

package testproc

import "os/exec"

// tieToParent does nothing here: only Linux has a parent-death signal. The
// test's cleanup still kills the process.
func tieToParent(*exec.Cmd) {}
