package transport

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Defaults for zero Config fields.
const (
	DefaultClusterName       = "ringcast"
	DefaultListenAddr        = "127.0.0.1:0"
	DefaultMaxFrameSize      = 8 << 20
	DefaultQueueFrames       = 8192
	DefaultQueueBytes        = 64 << 20
	DefaultDialTimeout       = 2 * time.Second
	DefaultHandshakeTimeout  = 5 * time.Second
	DefaultWriteTimeout      = 10 * time.Second
	DefaultIdleTimeout       = 30 * time.Second
	DefaultReconnectMin      = 50 * time.Millisecond
	DefaultReconnectMax      = 2 * time.Second
	DefaultMaxInbound        = 4096
	DefaultMaxPendingPerAddr = 8
)

// Config configures a Transport. The zero value of every field except
// NodeName and Handler means its default. New copies the Config; changing
// it (or the Secret's bytes) afterwards has no effect.
type Config struct {
	// NodeName is this node's name, unique in the cluster. Required.
	NodeName string
	// ProtocolVersion is the version of the protocol the user of the
	// Transport speaks over its links; zero is a valid version. It must be
	// equal on both ends of a link: the handshake refuses a peer speaking
	// another version (ErrVersionMismatch).
	ProtocolVersion uint8
	// ClusterName must be equal on both ends of a link. Default "ringcast".
	ClusterName string
	// ListenAddr is the TCP address to listen on. Default "127.0.0.1:0".
	ListenAddr string
	// Secret, if set, must be shared by both ends of every link: each end
	// proves knowledge of it during the handshake (HMAC-SHA256 over both
	// nonces and names), and a peer without it is refused. Every frame
	// after the handshake is then sealed with AES-256-GCM under keys
	// derived from the secret and the handshake (unless TLS protects the
	// link). Without a Secret and without TLS, links are neither
	// authenticated nor encrypted, and protected mode applies.
	Secret []byte
	// TLS, if set, protects every link with mutual TLS 1.3: it is used
	// both to dial (as a client configuration, with ServerName set to the
	// peer's host when empty) and to accept (as a server configuration).
	// ClientAuth must be tls.RequireAndVerifyClientCert with ClientCAs (or
	// a verification callback) set, or tls.RequireAnyClientCert with a
	// VerifyConnection or VerifyPeerCertificate callback that verifies
	// the peer, so every peer proves itself with a certificate. Certificates may be reloaded through
	// GetCertificate and GetClientCertificate. TLS and Secret may be
	// combined: the secret is then checked too, and frames are not sealed
	// a second time.
	TLS *tls.Config
	// InsecureAllowRemotePeers turns protected mode off. In protected mode
	// (no Secret, no TLS), the Transport accepts peer connections from
	// loopback addresses only, refusing others with ErrProtectedMode, and
	// refuses to send to peers that are not on loopback: anyone who could
	// reach the port could otherwise join the cluster and read its
	// traffic. Set it only on a network where every host is trusted.
	InsecureAllowRemotePeers bool
	// MaxFrameSize bounds a frame's length N (type byte plus body), sent
	// or received. Default 8 MiB.
	MaxFrameSize int
	// QueueFrames bounds the frames queued on one outbound link. Default 8192.
	QueueFrames int
	// QueueBytes bounds the bytes queued on one outbound link. Default
	// 64 MiB, raised to fit one frame of MaxFrameSize; an explicit value
	// must fit one such frame.
	QueueBytes int
	// DialTimeout bounds a TCP connect. Default 2s.
	DialTimeout time.Duration
	// HandshakeTimeout bounds the whole handshake, on either side. Default 5s.
	HandshakeTimeout time.Duration
	// WriteTimeout bounds one batch write on a link. Default 10s.
	WriteTimeout time.Duration
	// IdleTimeout closes a connection on which nothing arrived for that
	// long. Links ping every IdleTimeout/3. Default 30s.
	IdleTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the delay between reconnect
	// attempts, which doubles per failure, with jitter. Defaults 50ms, 2s.
	ReconnectMin time.Duration
	ReconnectMax time.Duration
	// MaxInbound bounds the accepted connections open at once; more are
	// closed at once. Default 4096.
	MaxInbound int
	// MaxPendingPerAddr bounds the accepted connections from one IP
	// address that have not finished the handshake (TLS included); more
	// are closed at once. Default 8.
	MaxPendingPerAddr int
	// Handler receives every user frame. Required.
	Handler Handler
	// Logger receives the transport's logs. nil discards them. Refused
	// and failed inbound connections are logged one line each, so a port
	// scan or a peer misconfigured in a loop is a flood of lines: a caller
	// that faces them wraps the logger's handler in a sampling one, as
	// package pubsub does. The lines of refused connections carry a
	// "kind" attribute (the reason and the claimed peer name) that tells
	// them apart.
	Logger *slog.Logger

	// wrapListener, if set, wraps the listener, and wrapConn, if set, each
	// dialled connection (test seams).
	wrapListener func(net.Listener) net.Listener
	wrapConn     func(net.Conn) net.Conn
}

// withDefaults returns a validated copy of c with defaults filled in.
func (c Config) withDefaults() (Config, error) {
	if c.NodeName == "" {
		return c, fmt.Errorf("%w: NodeName is required", ErrInvalidConfig)
	}
	if c.Handler == nil {
		return c, fmt.Errorf("%w: Handler is required", ErrInvalidConfig)
	}
	if c.MaxFrameSize < 0 || c.QueueFrames < 0 || c.QueueBytes < 0 || c.MaxInbound < 0 || c.MaxPendingPerAddr < 0 {
		return c, fmt.Errorf("%w: negative size or count", ErrInvalidConfig)
	}
	if c.DialTimeout < 0 || c.HandshakeTimeout < 0 || c.WriteTimeout < 0 || c.IdleTimeout < 0 ||
		c.ReconnectMin < 0 || c.ReconnectMax < 0 {
		return c, fmt.Errorf("%w: negative duration", ErrInvalidConfig)
	}
	c.Secret = bytes.Clone(c.Secret)
	setDefault(&c.ClusterName, DefaultClusterName)
	setDefault(&c.ListenAddr, DefaultListenAddr)
	setDefault(&c.MaxFrameSize, DefaultMaxFrameSize)
	setDefault(&c.QueueFrames, DefaultQueueFrames)
	setDefault(&c.MaxInbound, DefaultMaxInbound)
	setDefault(&c.MaxPendingPerAddr, DefaultMaxPendingPerAddr)
	setDefault(&c.DialTimeout, DefaultDialTimeout)
	setDefault(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	setDefault(&c.WriteTimeout, DefaultWriteTimeout)
	setDefault(&c.IdleTimeout, DefaultIdleTimeout)
	setDefault(&c.ReconnectMin, DefaultReconnectMin)
	setDefault(&c.ReconnectMax, DefaultReconnectMax)
	if uint64(c.MaxFrameSize) > maxEncodableFrame-sealOverhead {
		return c, fmt.Errorf("%w: MaxFrameSize %d exceeds the 4 GiB a length prefix can carry", ErrInvalidConfig, c.MaxFrameSize)
	}
	largest := c.MaxFrameSize + 4
	if c.QueueBytes == 0 {
		c.QueueBytes = max(DefaultQueueBytes, largest)
	} else if c.QueueBytes < largest {
		return c, fmt.Errorf("%w: QueueBytes %d cannot hold one frame of MaxFrameSize %d", ErrInvalidConfig, c.QueueBytes, c.MaxFrameSize)
	}
	if c.ReconnectMin > c.ReconnectMax {
		return c, fmt.Errorf("%w: ReconnectMin %v exceeds ReconnectMax %v", ErrInvalidConfig, c.ReconnectMin, c.ReconnectMax)
	}
	if c.IdleTimeout < 3*time.Millisecond {
		return c, fmt.Errorf("%w: IdleTimeout %v is too short", ErrInvalidConfig, c.IdleTimeout)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}
