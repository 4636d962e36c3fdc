package cli

import (
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/ringcast/ringcast/pubsub/gateway"
)

// Rate is a token bucket: Rate tokens a second, Burst at most. The zero
// Rate is no limit.
type Rate struct {
	Rate  float64
	Burst int
}

// Off reports whether r is no limit.
func (r Rate) Off() bool { return r.Rate <= 0 }

// Bounds of a rate flag.
const (
	maxRate  = 1e9
	maxBurst = 1 << 30
)

// ParseRate reads a rate flag: "RATE[:BURST]", RATE a number of events a
// second (fractions allowed: 0.5 is one every two seconds) and BURST a
// whole number of events that may come at once (default twice RATE, at
// least 1); "off" or "0" is no limit.
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if s == "off" || s == "0" {
		return Rate{}, nil
	}
	rs, bs, hasBurst := strings.Cut(s, ":")
	r, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rs), "/s"), 64)
	if err != nil || math.IsNaN(r) || r <= 0 || r > maxRate {
		return Rate{}, fmt.Errorf("want RATE[:BURST] with RATE a number of events a second above 0 and at most %g, or off", float64(maxRate))
	}
	burst := int(min(2*r, maxBurst))
	if hasBurst {
		b, err := strconv.Atoi(strings.TrimSpace(bs))
		if err != nil || b < 1 || b > maxBurst {
			return Rate{}, fmt.Errorf("burst %q: want a whole number from 1 to %d", bs, maxBurst)
		}
		burst = b
	}
	return Rate{Rate: r, Burst: max(1, burst)}, nil
}

// String formats r as ParseRate reads it.
func (r Rate) String() string {
	if r.Off() {
		return "off"
	}
	return strconv.FormatFloat(r.Rate, 'g', -1, 64) + ":" + strconv.Itoa(r.Burst)
}

// rateValue is a rate flag.
type rateValue struct{ p *Rate }

func (v rateValue) String() string {
	if v.p == nil {
		return ""
	}
	return v.p.String()
}

func (v rateValue) Set(s string) error {
	r, err := ParseRate(s)
	if err != nil {
		return err
	}
	*v.p = r
	return nil
}

// GuardFlags are the values of the flags that protect a listener from
// browsers of other sites and from floods (see DeclareGuard).
type GuardFlags struct {
	AllowedOrigins  []string // --allowed-origins, and its older name --origins
	AllowedHosts    []string // --allowed-hosts
	MaxConnsPerAddr int      // --max-conns-per-addr; 0 is no bound
	PublishRate     Rate     // --client-publish-rate, per connection
	JoinRate        Rate     // --client-join-rate, per connection
	UserPublishRate Rate     // --user-publish-rate
	UserJoinRate    Rate     // --user-join-rate
	APIRate         Rate     // --api-rate, per client IP

	origins []string // --origins
}

// DeclareGuard declares the flags of the Guard in front of the HTTP
// listener: --allowed-hosts, --allowed-origins and --api-rate, and with
// gateway, those of the WebSocket gateway's limits and the older name
// --origins of --allowed-origins.
func (c *Command) DeclareGuard(ws bool) *GuardFlags {
	f := &GuardFlags{
		MaxConnsPerAddr: gateway.DefaultMaxConnsPerAddr,
		PublishRate:     Rate{gateway.DefaultPublishRate, gateway.DefaultPublishBurst},
		JoinRate:        Rate{gateway.DefaultJoinRate, gateway.DefaultJoinBurst},
		UserPublishRate: Rate{gateway.DefaultUserPublishRate, gateway.DefaultUserPublishBurst},
		UserJoinRate:    Rate{gateway.DefaultUserJoinRate, gateway.DefaultUserJoinBurst},
		APIRate:         Rate{DefaultAPIRate, DefaultAPIBurst},
	}
	checkPattern := gateway.ValidateHostPattern
	c.Var(listValue{p: &f.AllowedHosts, check: checkPattern}, "allowed-hosts", "RINGCAST_ALLOWED_HOSTS",
		`comma-separated host names (or patterns: *.example.com) clients reach this server under, besides IP addresses, localhost, the --listen host and the hosts of --allowed-origins; a request naming another Host is refused with 403 (DNS rebinding); "*" allows any`)
	c.Var(listValue{p: &f.AllowedOrigins, check: checkPattern}, "allowed-origins", "RINGCAST_ALLOWED_ORIGINS",
		"comma-separated host patterns of the web pages of other origins allowed to connect and call the API (CORS), e.g. app.example.com,*.example.com; pages of this server's own host are always allowed")
	if ws {
		c.Var(listValue{p: &f.origins, check: checkPattern}, "origins", "RINGCAST_ORIGINS",
			"older name of --allowed-origins; both lists are allowed")
		c.Var(intValue{p: &f.MaxConnsPerAddr, min: 0, max: math.MaxInt32}, "max-conns-per-addr", "RINGCAST_MAX_CONNS_PER_ADDR",
			"WebSocket connections open at once from one client IP; one more is refused with 429 (0: no bound)")
		c.Var(rateValue{&f.PublishRate}, "client-publish-rate", "RINGCAST_CLIENT_PUBLISH_RATE",
			`publishes (and channel events) a second of one WebSocket connection, and the burst: RATE[:BURST] or off; one past it gets the error reply "rate limited"`)
		c.Var(rateValue{&f.JoinRate}, "client-join-rate", "RINGCAST_CLIENT_JOIN_RATE",
			"joins a second of one WebSocket connection, and the burst: RATE[:BURST] or off")
		c.Var(rateValue{&f.UserPublishRate}, "user-publish-rate", "RINGCAST_USER_PUBLISH_RATE",
			"publishes a second of all the connections of one authenticated user together, and the burst: RATE[:BURST] or off")
		c.Var(rateValue{&f.UserJoinRate}, "user-join-rate", "RINGCAST_USER_JOIN_RATE",
			"joins a second of all the connections of one authenticated user together, and the burst: RATE[:BURST] or off")
	}
	c.Var(rateValue{&f.APIRate}, "api-rate", "RINGCAST_API_RATE",
		"HTTP API requests a second from one client IP, and the burst: RATE[:BURST] or off; one past it is answered 429 with Retry-After")
	return f
}

// Origins returns --allowed-origins and --origins together.
func (f *GuardFlags) Origins() []string {
	out := slices.Clone(f.AllowedOrigins)
	for _, o := range f.origins {
		if !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out
}

// Hosts returns the allowed hosts for a server listening on listen:
// --allowed-hosts, and the listen address's host when it is a name.
func (f *GuardFlags) Hosts(listen string) []string {
	out := slices.Clone(f.AllowedHosts)
	if host, _, err := net.SplitHostPort(listen); err == nil && host != "" && net.ParseIP(host) == nil {
		out = append(out, host)
	}
	return out
}

// GatewayOptions sets the gateway options the flags describe in o: the
// allowed hosts and origins, and the connection and rate limits.
func (f *GuardFlags) GatewayOptions(o *gateway.Options, listen string) {
	o.AllowedHosts = f.Hosts(listen)
	o.OriginPatterns = f.Origins()
	o.MaxConnsPerAddr = f.MaxConnsPerAddr
	if o.MaxConnsPerAddr == 0 {
		o.MaxConnsPerAddr = -1
	}
	o.PublishRate, o.PublishBurst = gatewayRate(f.PublishRate)
	o.JoinRate, o.JoinBurst = gatewayRate(f.JoinRate)
	o.UserPublishRate, o.UserPublishBurst = gatewayRate(f.UserPublishRate)
	o.UserJoinRate, o.UserJoinBurst = gatewayRate(f.UserJoinRate)
}

// gatewayRate maps a Rate to the gateway's: a negative rate is no limit.
func gatewayRate(r Rate) (float64, int) {
	if r.Off() {
		return -1, 0
	}
	return r.Rate, r.Burst
}

// Guard returns the Guard the flags describe in front of next, for a
// server listening on listen. protected is --protected-mode; clientAuth
// tells whether client authentication is configured (see
// GuardConfig.ClientAuth); request bodies are bounded to maxPayload and
// some room for the JSON around it.
func (f *GuardFlags) Guard(next http.Handler, listen string, protected, clientAuth bool, maxPayload int, log *slog.Logger) *Guard {
	return NewGuard(next, GuardConfig{
		AllowedHosts:   f.Hosts(listen),
		AllowedOrigins: f.Origins(),
		ProtectedMode:  protected,
		ClientAuth:     clientAuth,
		APIRate:        f.APIRate.Rate,
		APIBurst:       f.APIRate.Burst,
		MaxBodyBytes:   int64(max(0, maxPayload)) + maxBodySlack,
		Logger:         log,
	})
}
