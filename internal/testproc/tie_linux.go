package testproc

import (
	"os/exec"
	"syscall"
)

// tieToParent asks the kernel to kill cmd's process when the thread that
// starts it ends.
func tieToParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
