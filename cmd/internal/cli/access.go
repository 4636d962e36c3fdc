package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/ringcast/ringcast/cmd/internal/access"
	"github.com/ringcast/ringcast/cmd/internal/notify"
	"github.com/ringcast/ringcast/pubsub/gateway"
)

// AccessFlags are the flags of client authentication and per-namespace
// permissions (package access). --jwt-secret and --anonymous are the
// notification system's (NotifyFlags) and apply here too.
type AccessFlags struct {
	JWTPublicKey string // --jwt-public-key: PEM file
	JWKS         string // --jwks: JSON Web Key Set file
	JWTAudience  string // --jwt-audience
	JWTIssuer    string // --jwt-issuer
	APIKey       string // --api-key: comma-separated keys
	Config       string // --config: TOML file of namespace permissions

	// What Parse loaded from the flags above.
	config   *access.Config
	verifier *access.FileVerifier
	keys     access.APIKeys
}

// DeclareAccess declares the flags of client authentication and
// permissions on c. Call it after DeclareNotify, whose --jwt-secret and
// --anonymous it uses. Parse reads the files the flags name, and fails
// (exit status 2) on any error in them.
func (c *Command) DeclareAccess() *AccessFlags {
	f := &AccessFlags{}
	c.access = f
	c.Var(stringValue{&f.Config}, "config", "RINGCAST_CONFIG",
		`TOML file of per-namespace permissions (namespace = a topic's prefix before its first ":"): who may subscribe, publish and read history, and whether clients without a token are admitted; read at start (see examples/ringcast.toml); empty: every topic open, as --anonymous allows`)
	c.Var(stringValue{&f.JWTPublicKey}, "jwt-public-key", "RINGCAST_JWT_PUBLIC_KEY",
		"PEM file of the public key that verifies client JWTs: RSA (RS256, 2048 bits or more) or ECDSA P-256 (ES256); sub = user id, exp required, an optional channels claim lists the topics or prefixes (\"orders:*\") the token grants; read again when it changes")
	c.Var(stringValue{&f.JWKS}, "jwks", "RINGCAST_JWKS",
		"JSON Web Key Set file whose RSA (RS256) and EC P-256 (ES256) keys verify client JWTs, chosen by the token's kid; read again when it changes")
	c.Var(stringValue{&f.JWTAudience}, "jwt-audience", "RINGCAST_JWT_AUDIENCE",
		"if set, client JWTs must carry this aud")
	c.Var(stringValue{&f.JWTIssuer}, "jwt-issuer", "RINGCAST_JWT_ISSUER",
		"if set, client JWTs must carry this iss")
	c.Var(stringValue{&f.APIKey}, "api-key", "RINGCAST_API_KEY",
		`API keys of the servers that publish with POST /api/publish ("Authorization: Bearer KEY" or "X-API-Key: KEY"), comma-separated so that a new key can be rolled out before the old one is dropped; 16 bytes or more each. Prefer the variable: flags show in ps`)
	return f
}

// load reads the files the flags name and builds the verifier, the keys
// and the config. n is the notification system's flags (nil without).
func (f *AccessFlags) load(n *NotifyFlags) error {
	var err error
	if f.keys, err = access.ParseAPIKeys(f.APIKey); err != nil {
		return fmt.Errorf("--api-key: %w", err)
	}
	if f.Config != "" {
		if f.config, err = access.LoadConfig(f.Config); err != nil {
			return err
		}
	}
	vc := access.VerifierConfig{Audience: f.JWTAudience, Issuer: f.JWTIssuer}
	if n != nil {
		vc.Secret = []byte(n.JWTSecret)
	}
	if f.JWTPublicKey != "" {
		if vc.PublicKey, err = access.LoadPublicKey(f.JWTPublicKey); err != nil {
			return fmt.Errorf("--jwt-public-key: %w", err)
		}
	}
	if f.JWKS != "" {
		if vc.KeySet, err = access.LoadKeySet(f.JWKS); err != nil {
			return fmt.Errorf("--jwks: %w", err)
		}
	}
	if len(vc.Secret) == 0 && vc.PublicKey == nil && vc.KeySet == nil {
		if f.JWTAudience != "" || f.JWTIssuer != "" {
			return errors.New("--jwt-audience and --jwt-issuer need a key: --jwt-secret, --jwt-public-key or --jwks")
		}
		return nil
	}
	// The files were read above for errors that name the flag; the
	// verifier reads them again whenever they change.
	vc.PublicKey, vc.KeySet = nil, nil
	f.verifier, err = access.NewFileVerifier(vc, access.KeyFiles{PublicKey: f.JWTPublicKey, KeySet: f.JWKS})
	return err
}

// ClientAuthConfigured reports whether client authentication is
// configured: any of --jwt-secret, --jwt-public-key, --jwks, --api-key or
// --config given, or --anonymous=false. Without it, clients are anonymous
// and every topic is open.
func (c *Command) ClientAuthConfigured() bool {
	if n := c.notify; n != nil && (n.JWTSecret != "" || !n.Anonymous) {
		return true
	}
	f := c.access
	return f != nil && (f.JWTPublicKey != "" || f.JWKS != "" || f.APIKey != "" || f.Config != "")
}

// Access is the client authentication and permissions a gateway applies:
// the tokens it accepts, the API keys, and the policy. It is safe for
// concurrent use.
type Access struct {
	// Policy decides joins, history reads and publishes.
	Policy   *access.Policy
	verifier *access.FileVerifier // nil: no JWT accepted but the notification system's
	keys     access.APIKeys
	notify   *Notify // nil: no opaque token accepted
}

// Access returns the authentication and permissions the flags describe,
// with the notification system nt's tokens (nt may be nil). It logs the
// keys of a JWKS it left out, and the reloads of the key files, which are
// read again when they change.
func (e *Env) Access(nt *Notify) *Access {
	a := &Access{notify: nt}
	anonymous := true
	if n := e.cmd.notify; n != nil {
		anonymous = n.Anonymous
	}
	f := e.cmd.access
	if f == nil {
		f = &AccessFlags{}
	}
	if f.verifier != nil {
		f.verifier.SetLogger(e.Log)
		for _, s := range f.verifier.Skipped() {
			e.Log.Warn("--jwks: key left out", "key", s)
		}
	}
	a.Policy = access.NewPolicy(f.config, anonymous)
	a.verifier = f.verifier
	a.keys = f.keys
	return a
}

// verifyJWT returns the user of a JWT the flags' keys verify; nil without
// a key.
func (f *AccessFlags) verifyJWT() func(string) (string, error) {
	if f == nil || f.verifier == nil {
		return nil
	}
	return func(token string) (string, error) {
		c, err := f.verifier.Verify(token)
		if err != nil {
			return "", err
		}
		return c.Subject, nil
	}
}

// Authenticate returns who token stands for: anonymous for "", the
// subject and claims of a JWT the configured keys verify, or the user of
// an opaque token of the notification system. Anything else is an error.
func (a *Access) Authenticate(ctx context.Context, token string) (gateway.Identity, error) {
	if token == "" {
		return gateway.Identity{}, nil
	}
	if a.verifier != nil && access.IsJWT(token) {
		c, err := a.verifier.Verify(token)
		if err != nil {
			return gateway.Identity{}, err
		}
		return gateway.Identity{User: c.Subject, Data: c}, nil
	}
	if a.notify != nil {
		user, err := a.notify.Service.Authenticate(ctx, token)
		if errors.Is(err, notify.ErrUnavailable) {
			// The database is down: not the token's fault (503, not 401).
			return gateway.Identity{}, fmt.Errorf("%w: %w", gateway.ErrUnavailable, err)
		}
		if err != nil {
			return gateway.Identity{}, err
		}
		return gateway.Identity{User: user}, nil
	}
	if access.IsJWT(token) {
		return gateway.Identity{}, fmt.Errorf("%w: JWTs are not accepted here (no --jwt-secret, --jwt-public-key or --jwks)", access.ErrUnauthorized)
	}
	return gateway.Identity{}, fmt.Errorf("%w: the token is not accepted here", access.ErrUnauthorized)
}

// checksTokens reports whether any token can be checked: JWT keys or the
// notification system's tokens.
func (a *Access) checksTokens() bool { return a.verifier != nil || a.notify != nil }

// GatewayOptions makes the gateway authenticate connections with
// Authenticate and decide joins, history reads and publishes with the
// policy. Call it after Notify.GatewayOptions. Where no token can be
// checked, tokens are ignored, as before: every connection is anonymous.
func (a *Access) GatewayOptions(o *gateway.Options) {
	if a.checksTokens() {
		o.AuthenticateConn = func(r *http.Request, token string) (gateway.Identity, error) {
			return a.Authenticate(r.Context(), token)
		}
	}
	o.Authorize = a.Policy.Authorize
}

// APIConfig makes POST /api/publish decide with AuthorizePublish.
func (a *Access) APIConfig(cfg *APIConfig) {
	cfg.Authorize = a.AuthorizePublish
	cfg.Operator = a.AuthorizeOperator
}

// AuthorizeOperator decides a request for what only operators should
// see, the list of every topic of the cluster: once API keys are
// configured (--api-key) it needs one (401 otherwise); without them the
// listener's protection (protected mode, the network) is what guards it.
func (a *Access) AuthorizeOperator(r *http.Request) error {
	if a.keys.Len() == 0 {
		return nil
	}
	cred, err := a.keys.RequestCredentials(r)
	if err != nil || !cred.APIKey {
		return &access.Denial{Unauthorized: true, Reason: access.ReasonUnauthorized, Detail: "listing the cluster's topics needs an API key (X-API-Key or Authorization: Bearer)"}
	}
	return nil
}

// AuthorizePublish decides whether an HTTP request may publish to topic:
// with an API key anywhere but where publish = "creator"; with a token as
// the namespace's publish rule allows its user; with neither where the
// namespace admits anonymous clients and lets subscribers publish. A
// bearer token is ignored (anonymous) only where neither a token nor an
// API key can be checked. The error is an *access.Denial (401 or 403), or
// wraps gateway.ErrUnavailable when the token cannot be checked now (503).
func (a *Access) AuthorizePublish(r *http.Request, topic string) error {
	cred, err := a.keys.RequestCredentials(r)
	if err != nil {
		return &access.Denial{Unauthorized: true, Reason: access.ReasonUnauthorized, Detail: "the X-API-Key is not one of the API keys"}
	}
	who := access.Who{APIKey: cred.APIKey}
	if cred.Token != "" && (a.checksTokens() || a.keys.Len() > 0) {
		if who.Identity, err = a.Authenticate(r.Context(), cred.Token); errors.Is(err, gateway.ErrUnavailable) {
			return err
		} else if err != nil {
			detail := "the bearer token is neither an API key nor a valid token"
			if a.keys.Len() == 0 {
				detail = "the bearer token is not valid"
			}
			return &access.Denial{Unauthorized: true, Reason: access.ReasonUnauthorized,
				Detail: detail + ": " + strings.TrimPrefix(err.Error(), access.ErrUnauthorized.Error()+": ")}
		}
	}
	return a.Policy.Decide(gateway.ActionPublish, topic, who)
}
