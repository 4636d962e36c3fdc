// Package access decides who may do what with the topics of the ringcast
// binaries: it verifies client tokens (JWTs), checks API keys, reads the
// per-namespace permissions of a config file, and answers the gateway's
// Authorize hook and the HTTP publish path.
//
// # Namespaces
//
// A topic's namespace is the part of its name before the first ":"
// ("admin" for "admin:billing"). Topics without ":" are in the default
// namespace, which follows the [default] table, as do namespaces the file
// does not list.
//
// # Config file
//
// The file (ringcast-ws --config FILE, or RINGCAST_CONFIG) is TOML:
//
//	[default]                  # topics in no listed namespace
//	subscribe = "anyone"       # anyone | authenticated | claim
//	publish   = "clients"      # clients | authenticated | claim | creator | api
//	history   = true           # joins with since may read the history
//	anonymous = true           # connections without a token are admitted
//
//	[namespaces.admin]         # topics "admin:..."
//	subscribe = "claim"
//	publish   = "api"
//	history   = false
//	anonymous = false
//
// subscribe: "anyone" lets every admitted connection join; "authenticated"
// needs a token; "claim" needs a JWT whose channels claim grants the
// topic.
//
// publish: "clients" lets every connection that may subscribe publish;
// "authenticated" needs a token; "claim" needs a JWT whose channels claim
// grants the topic; "api" leaves publishing to POST /api/publish with an
// API key; "creator" leaves it to the topic's creator through the
// notification system's API, and is valid in the namespace
// "notifications" only (NotifyNamespace; other topics have no creator).
//
// history: false refuses joins that resume with since ("history not
// allowed"); live messages still flow.
//
// anonymous: false refuses every join and publish of a connection without
// a token ("unauthorized"), whatever subscribe and publish say.
//
// A key a namespace leaves out takes [default]'s value; a key [default]
// leaves out takes the open value (Open): anyone, clients, true, true,
// which is also what every topic gets without a config file. Unknown keys,
// unknown values and values of the wrong type are errors that name the
// file and the line (*ConfigError), as are TOML syntax errors.
//
// # Tokens
//
// A Verifier checks JWTs: HS256 with a shared secret, RS256 and ES256
// with a PEM public key or a JSON Web Key Set (keys chosen by kid). Each
// algorithm is pinned to its own key type. exp is required; nbf and iat
// are honoured with a leeway; aud and iss are checked when configured;
// sub, the user id, is required (notify.ValidateUserID). An optional
// "channels" claim lists the topics the token grants, as exact names or
// prefixes ending in "*" ("orders:*"), for the "claim" rules. The
// connection's gateway.Identity carries the *Claims in Data. A
// FileVerifier reads its keys from files and reads them again when they
// change, for key rotation without a restart.
//
// # API keys
//
// APIKeys are the keys of servers that publish over HTTP, presented as
// "X-API-Key: KEY" or "Authorization: Bearer KEY" and compared in
// constant time. Several keys may be valid at once, for rotation.
//
// # Decisions
//
// Policy.Decide answers for a join (gateway.ActionSubscribe), a join with
// since (gateway.ActionHistory) and a publish (gateway.ActionPublish);
// Policy.Authorize is the gateway's Options.Authorize. A refusal is a
// *Denial: a Phoenix error reply on WebSocket (the socket stays open), a
// 401 or 403 over HTTP.
//
// # Files
//
//   - config.go: Config, Rules, ParseConfig, LoadConfig.
//   - token.go: Verifier, Claims.
//   - keys.go: PEM public keys and JSON Web Key Sets.
//   - reload.go: FileVerifier, key files read again when they change.
//   - apikey.go: APIKeys and the credentials of an HTTP request.
//   - policy.go: Policy, Decide, Denial.
package access
