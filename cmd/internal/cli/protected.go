package cli

// declareProtected declares --protected-mode, common to every binary: with
// no client authentication configured, the HTTP listener serves clients of
// this host only (see Guard).
func (c *Command) declareProtected() {
	c.Common.ProtectedMode = true
	c.Var(boolValue{&c.Common.ProtectedMode}, "protected-mode", "RINGCAST_PROTECTED_MODE",
		"while no client authentication is configured, serve HTTP and WebSocket clients of this host only (loopback) and refuse the others with 403: true or false (write --protected-mode=false)")
}
