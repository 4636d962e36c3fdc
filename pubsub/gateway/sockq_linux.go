package gateway

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// unsentBytes reports how many bytes the kernel holds in the send queue of
// the socket: written by the gateway and not yet acknowledged by the
// client's TCP stack.
func unsentBytes(rc syscall.RawConn) (int, bool) {
	var n int
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
	}); err != nil || ierr != nil {
		return 0, false
	}
	return n, true
}
