//go:build !linux

package gateway

import "syscall"

// unsentBytes reports that the send queue of a socket cannot be measured on
// this platform: the gateway bounds it with a small send buffer instead.
func unsentBytes(syscall.RawConn) (int, bool) { return 0, false }
