// The bed's pause image: the first process of every pod sandbox. It holds the pod's namespaces,
// reaps the zombies it inherits as PID 1, and exits on SIGTERM/SIGINT, as Kubernetes' pause does.
// Built here (static, no cgo) so the node bed needs no registry.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var st syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &st, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
