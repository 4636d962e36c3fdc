package cli

import (
	"context"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/ringcast/ringcast/pubsub/gateway"
)

// Defaults of the guard's flags.
const (
	// DefaultAPIRate and DefaultAPIBurst bound the API requests of one
	// client IP: generous, as a backend publishing through POST
	// /api/publish sends many.
	DefaultAPIRate  = 1000
	DefaultAPIBurst = 2000
	// maxBodySlack is what the guard allows an API body beyond
	// --max-payload: the handlers bound their bodies themselves, tighter.
	maxBodySlack = 64 << 10
	// maxRateAddrs bounds the client IPs the API's rate limit tracks:
	// past it, the IPs not yet tracked share one limiter until idle ones
	// are forgotten (after rateAddrIdle).
	maxRateAddrs = 16384
	rateAddrIdle = time.Minute
	// guardLogEvery is how often each kind of refusal is logged: once,
	// then a line with the count of the others once per interval.
	guardLogEvery = 10 * time.Second
	// corsMaxAge is how long a browser may cache a preflight answer, in
	// seconds.
	corsMaxAge = "600"
)

// GuardConfig configures a Guard. Zero fields mean no check of that kind,
// except as said.
type GuardConfig struct {
	// AllowedHosts are the host patterns the Host header may name besides
	// IP addresses and localhost (see gateway.HostAllowed): the names the
	// server is reached under. A request for another host is refused
	// with 403 (a DNS-rebinding page).
	AllowedHosts []string
	// AllowedOrigins are the host patterns of the cross-origin web pages
	// allowed to call the API (and answered CORS for), as
	// gateway.OriginAllowed matches them. Their hosts are allowed hosts
	// too.
	AllowedOrigins []string
	// ProtectedMode refuses, while ClientAuth is false, every request
	// whose peer is not on this host (a loopback address, or the address
	// the connection arrived at), with 403 and a body saying why.
	ProtectedMode bool
	// ClientAuth tells whether client authentication is configured (a
	// token or key checks every client): protected mode then lets every
	// address in.
	ClientAuth bool
	// APIRate and APIBurst bound the requests to /api/ of one client IP
	// (a token bucket): past it, 429 with Retry-After. A zero rate is no
	// limit.
	APIRate  float64
	APIBurst int
	// MaxBodyBytes bounds a request body: a larger one is answered 413.
	// Zero is no bound.
	MaxBodyBytes int64
	// Logger receives one line per kind of refusal and interval; nil
	// discards them.
	Logger *slog.Logger
}

// GuardStats counts the requests a Guard refused, by reason. It is part
// of GET /api/stats, under "guard".
type GuardStats struct {
	ProtectedMode uint64 `json:"protected_mode"` // from another host while no client authentication is configured
	Host          uint64 `json:"host"`           // for a Host not allowed (DNS rebinding)
	CrossSite     uint64 `json:"cross_site"`     // unsafe requests from pages of other sites, without a token
	ContentType   uint64 `json:"content_type"`   // browser bodies that are not JSON (415)
	Preflight     uint64 `json:"preflight"`      // CORS preflights of origins not allowed
	RateLimited   uint64 `json:"rate_limited"`   // API requests past --api-rate (429)
	TooLarge      uint64 `json:"too_large"`      // bodies past the bound (413)
}

// refusal kinds, indexes of Guard.logs.
const (
	refuseProtected = iota
	refuseHost
	refuseCrossSite
	refuseContentType
	refusePreflight
	refuseRate
	refuseTooLarge
	refuseKinds
)

// ProtectedModeMessage is the body of a request refused by protected
// mode.
const ProtectedModeMessage = "protected mode: no client authentication is configured, so only clients on this host are served; " +
	"configure client authentication (set --jwt-secret, --api-key or --config), " +
	"or set --protected-mode=false to serve every address without it (then bind --listen to an address only trusted clients reach)"

// Guard is the HTTP middleware in front of a ringcast binary's listener
// (WebSocket gateway and HTTP API alike). In order, it refuses:
//
//   - in protected mode without client authentication, clients of other
//     hosts (403);
//   - a Host header that is not an IP address, localhost or an allowed
//     host (403): a page of a DNS-rebinding attack;
//
// and on /api/:
//
//   - more requests than APIRate from one client IP (429, Retry-After);
//   - CORS preflights (OPTIONS with Access-Control-Request-Method) of
//     origins not allowed (403, without CORS headers), answering those of
//     allowed origins itself (204);
//   - unsafe requests (not GET, HEAD or OPTIONS) without an Authorization
//     header from a page of another site: Sec-Fetch-Site cross-site or
//     same-site, or an Origin that is neither the request's own host nor
//     allowed (403);
//   - bodies of browser requests (with Origin or Sec-Fetch-Site) whose
//     Content-Type is not JSON (415): a cross-site form or text/plain
//     "simple request" is never JSON;
//   - bodies larger than MaxBodyBytes (413).
//
// Requests without Origin and Sec-Fetch-Site (curl, servers) are not
// browsers' and pass the cross-site checks. Responses to allowed origins
// carry Access-Control-Allow-Origin. Refusals are JSON {"error": ...} on
// /api/ and plain text elsewhere, counted (Stats) and logged, one line
// per kind and interval.
//
// A Guard is safe for concurrent use. It never wraps the ResponseWriter,
// so WebSocket upgrades pass through.
type Guard struct {
	next  http.Handler
	cfg   GuardConfig
	hosts []string // AllowedHosts and the hosts of AllowedOrigins
	log   *slog.Logger

	counts [refuseKinds]atomic.Uint64

	logMu sync.Mutex
	logs  [refuseKinds]logWindow

	rateMu   sync.Mutex
	rates    map[string]*addrRate
	overflow *rate.Limiter // the IPs past maxRateAddrs
	swept    time.Time
}

// logWindow is the sampling state of one kind of refusal.
type logWindow struct {
	at         time.Time // when the last line was logged
	suppressed int
}

// addrRate is one client IP's API limiter.
type addrRate struct {
	lim  *rate.Limiter
	last time.Time
}

// NewGuard returns a Guard in front of next. cfg is copied.
func NewGuard(next http.Handler, cfg GuardConfig) *Guard {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	g := &Guard{next: next, cfg: cfg, log: cfg.Logger, rates: make(map[string]*addrRate)}
	g.hosts = append(append(g.hosts, cfg.AllowedHosts...), cfg.AllowedOrigins...)
	if cfg.APIRate > 0 {
		if g.cfg.APIBurst < 1 {
			g.cfg.APIBurst = max(1, int(2*cfg.APIRate))
		}
		g.overflow = rate.NewLimiter(rate.Limit(cfg.APIRate), g.cfg.APIBurst)
	}
	return g
}

// Stats returns the Guard's counters.
func (g *Guard) Stats() GuardStats {
	return GuardStats{
		ProtectedMode: g.counts[refuseProtected].Load(),
		Host:          g.counts[refuseHost].Load(),
		CrossSite:     g.counts[refuseCrossSite].Load(),
		ContentType:   g.counts[refuseContentType].Load(),
		Preflight:     g.counts[refusePreflight].Load(),
		RateLimited:   g.counts[refuseRate].Load(),
		TooLarge:      g.counts[refuseTooLarge].Load(),
	}
}

// ServeHTTP checks r and passes it to the next handler, or refuses it.
func (g *Guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.cfg.ProtectedMode && !g.cfg.ClientAuth && !sameHost(r) {
		g.refuse(w, r, refuseProtected, http.StatusForbidden, ProtectedModeMessage)
		return
	}
	if !gateway.HostAllowed(g.hosts, r.Host) {
		g.refuse(w, r, refuseHost, http.StatusForbidden, "host "+strconv.Quote(r.Host)+
			" not allowed: this server answers to IP addresses, localhost and the names of --allowed-hosts and --allowed-origins only (a protection against DNS rebinding)")
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/api/") {
		g.limitBody(w, r)
		g.next.ServeHTTP(w, r)
		return
	}
	if !g.allowRate(r) {
		w.Header().Set("Retry-After", strconv.Itoa(int(max(1, 1/g.cfg.APIRate))))
		g.refuse(w, r, refuseRate, http.StatusTooManyRequests, "too many requests from "+clientHost(r.RemoteAddr)+": at most "+
			strconv.FormatFloat(g.cfg.APIRate, 'g', -1, 64)+" a second (--api-rate)")
		return
	}
	origin := r.Header.Get("Origin")
	corsOrigin := origin != "" && g.crossOriginAllowed(origin)
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		g.preflight(w, r, corsOrigin)
		return
	}
	if !safeMethod(r.Method) && r.Header.Get("Authorization") == "" {
		if msg := g.crossSite(r, origin, corsOrigin); msg != "" {
			g.refuse(w, r, refuseCrossSite, http.StatusForbidden, msg)
			return
		}
	}
	if hasBody(r) && isBrowser(r) && !isJSON(r.Header.Get("Content-Type")) {
		g.refuse(w, r, refuseContentType, http.StatusUnsupportedMediaType,
			"the body of a request from a web page must be JSON: send Content-Type: application/json")
		return
	}
	if !g.limitBody(w, r) {
		return
	}
	if corsOrigin {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
	}
	g.next.ServeHTTP(w, r)
}

// crossSite returns why an unsafe request without credentials comes from
// a page of another site, or "" if it does not.
func (g *Guard) crossSite(r *http.Request, origin string, corsOrigin bool) string {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		if !corsOrigin {
			return "cross-site request refused: a page of another site may not call this API without a token (Sec-Fetch-Site: " +
				r.Header.Get("Sec-Fetch-Site") + ", Origin " + strconv.Quote(origin) + "); allow its origin with --allowed-origins"
		}
	}
	if origin != "" && !corsOrigin && !gateway.OriginAllowed(nil, origin, r.Host) {
		return "cross-origin request refused: origin " + strconv.Quote(origin) + " is not allowed (--allowed-origins) and sent no token"
	}
	return ""
}

// crossOriginAllowed reports whether origin, a page of another origin, is
// one of AllowedOrigins.
func (g *Guard) crossOriginAllowed(origin string) bool {
	if len(g.cfg.AllowedOrigins) == 0 || origin == "null" {
		return false
	}
	// An empty host never matches the origin's: only the patterns decide.
	return gateway.OriginAllowed(g.cfg.AllowedOrigins, origin, "")
}

// preflight answers a CORS preflight: 204 with the CORS headers for an
// allowed origin, 403 without them for any other.
func (g *Guard) preflight(w http.ResponseWriter, r *http.Request, allowed bool) {
	if !allowed {
		g.refuse(w, r, refusePreflight, http.StatusForbidden, "CORS preflight refused: origin "+
			strconv.Quote(r.Header.Get("Origin"))+" is not allowed (--allowed-origins)")
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
	h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, DELETE")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	h.Set("Access-Control-Max-Age", corsMaxAge)
	h.Add("Vary", "Origin")
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	w.WriteHeader(http.StatusNoContent)
}

// limitBody refuses a body declared larger than MaxBodyBytes with 413,
// and bounds the others: a handler reading past the bound gets an
// *http.MaxBytesError.
func (g *Guard) limitBody(w http.ResponseWriter, r *http.Request) bool {
	limit := g.cfg.MaxBodyBytes
	if limit <= 0 || r.Body == nil || r.Body == http.NoBody {
		return true
	}
	if r.ContentLength > limit {
		g.refuse(w, r, refuseTooLarge, http.StatusRequestEntityTooLarge,
			"request body of "+strconv.FormatInt(r.ContentLength, 10)+" bytes is larger than "+strconv.FormatInt(limit, 10)+" bytes")
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	return true
}

// allowRate takes a token of the client IP's API limiter.
func (g *Guard) allowRate(r *http.Request) bool {
	if g.cfg.APIRate <= 0 {
		return true
	}
	ip := clientHost(r.RemoteAddr)
	now := time.Now()
	g.rateMu.Lock()
	e := g.rates[ip]
	if e == nil {
		if len(g.rates) >= maxRateAddrs && now.Sub(g.swept) >= rateAddrIdle/4 {
			g.swept = now
			for k, v := range g.rates {
				if now.Sub(v.last) >= rateAddrIdle {
					delete(g.rates, k)
				}
			}
		}
		if len(g.rates) < maxRateAddrs {
			e = &addrRate{lim: rate.NewLimiter(rate.Limit(g.cfg.APIRate), g.cfg.APIBurst)}
			g.rates[ip] = e
		}
	}
	lim := g.overflow
	if e != nil {
		e.last = now
		lim = e.lim
	}
	g.rateMu.Unlock()
	return lim.AllowN(now, 1)
}

// refuse answers r with status and msg (JSON on /api/, text elsewhere),
// counts it, and logs it if its kind was not logged this interval.
func (g *Guard) refuse(w http.ResponseWriter, r *http.Request, kind, status int, msg string) {
	g.counts[kind].Add(1)
	if strings.HasPrefix(r.URL.Path, "/api/") {
		writeError(w, status, msg)
	} else {
		http.Error(w, msg, status)
	}
	now := time.Now()
	g.logMu.Lock()
	lw := &g.logs[kind]
	if !lw.at.IsZero() && now.Sub(lw.at) < guardLogEvery {
		lw.suppressed++
		g.logMu.Unlock()
		return
	}
	suppressed := lw.suppressed
	lw.at, lw.suppressed = now, 0
	g.logMu.Unlock()
	g.log.Log(context.Background(), slog.LevelWarn, "request refused", "status", status, "reason", msg,
		"remote", r.RemoteAddr, "host", r.Host, "method", r.Method, "path", r.URL.Path,
		"origin", r.Header.Get("Origin"), "suppressed", suppressed)
}

// sameHost reports whether the peer of r is on this host: a loopback
// address, or the very address the connection arrived at (a client of
// this host that dialled one of its other addresses; a packet from
// elsewhere cannot carry a local source address, which Linux drops as
// martian).
func sameHost(r *http.Request) bool {
	ip := net.ParseIP(clientHost(r.RemoteAddr))
	if ip == nil {
		return false
	}
	if ip.IsLoopback() {
		return true
	}
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	lip := net.ParseIP(clientHost(local.String()))
	return lip != nil && !lip.IsUnspecified() && lip.Equal(ip)
}

// clientHost returns the host of a "host:port" address, or all of it.
func clientHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// hasBody reports whether r carries a body.
func hasBody(r *http.Request) bool {
	return r.ContentLength > 0 || r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody
}

// isBrowser reports whether r was sent by a web browser: browsers send
// Origin with every cross-origin request, and Sec-Fetch-Site with every
// request to a secure context.
func isBrowser(r *http.Request) bool {
	return r.Header.Get("Origin") != "" || r.Header.Get("Sec-Fetch-Site") != ""
}

// isJSON reports whether a Content-Type is application/json or a
// +json type.
func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}
