package notify

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"
)

// Token is an opaque bearer token and the time it expires.
type Token struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// tokenBytes is the entropy of an opaque token.
const tokenBytes = 32

// maxTokenLen bounds a presented token before any work is done on it.
const maxTokenLen = 4096

// CreateUser creates an account. It fails with ErrInvalid for a bad id,
// email or password (see ValidateUserID, ValidateEmail, ValidatePassword)
// and ErrConflict when the id is taken.
func (s *Service) CreateUser(ctx context.Context, id, email, password string) error {
	if err := ValidateUserID(id); err != nil {
		return err
	}
	if err := ValidateEmail(email); err != nil {
		return err
	}
	if err := ValidatePassword(password); err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.opts.BcryptCost)
	if err != nil {
		return fmt.Errorf("notify: hash password: %w", err)
	}
	res, err := s.db.exec(ctx, s.db.SQL, `
		INSERT INTO notify_users (id, email, password_hash, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`, id, email, string(hash), s.nowNano())
	if err != nil {
		return wrapDB(ctx, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return wrapDB(ctx, err)
	} else if n == 0 {
		return fmt.Errorf("%w: user id %q is taken", ErrConflict, id)
	}
	return nil
}

// Email returns a user's email address, and ErrNotFound for a user without
// an account here (a JWT user of an application with its own accounts).
func (s *Service) Email(ctx context.Context, user string) (string, error) {
	var email string
	err := s.db.SQL.QueryRowContext(ctx, s.db.Rebind(`SELECT email FROM notify_users WHERE id = ?`), user).Scan(&email)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("%w: no account %q", ErrNotFound, user)
	}
	return email, wrapDB(ctx, err)
}

// dummy returns a bcrypt hash that no password matches, of the service's
// cost: comparing against it for an unknown user takes as long as for a
// known one.
func (s *Service) dummy() []byte {
	s.dummyOnce.Do(func() {
		var pw [24]byte
		_, _ = rand.Read(pw[:])
		h, err := bcrypt.GenerateFromPassword([]byte(hex.EncodeToString(pw[:])), s.opts.BcryptCost)
		if err != nil {
			panic(fmt.Sprintf("notify: bcrypt: %v", err)) // only for a cost out of range, which NewService prevents
		}
		s.dummyHash = h
	})
	return s.dummyHash
}

// errBadLogin is the one answer to a wrong user id or a wrong password.
var errBadLogin = fmt.Errorf("%w: wrong user id or password", ErrUnauthorized)

// Login checks a user's password and issues an opaque token that expires
// after Options.TokenTTL. An unknown user and a wrong password fail alike
// with ErrUnauthorized, after the same bcrypt work. It also deletes the
// user's expired tokens.
func (s *Service) Login(ctx context.Context, id, password string) (Token, error) {
	var hash string
	err := s.db.SQL.QueryRowContext(ctx, s.db.Rebind(`SELECT password_hash FROM notify_users WHERE id = ?`), id).Scan(&hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		_ = bcrypt.CompareHashAndPassword(s.dummy(), []byte(password))
		return Token{}, errBadLogin
	case err != nil:
		return Token{}, wrapDB(ctx, err)
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
		return Token{}, errBadLogin
	}
	var raw [tokenBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return Token{}, fmt.Errorf("notify: token: %w", err)
	}
	tok := base64.RawURLEncoding.EncodeToString(raw[:])
	now := s.now()
	exp := now.Add(s.opts.TokenTTL)
	err = s.db.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.db.exec(ctx, tx, `DELETE FROM notify_tokens WHERE user_id = ? AND expires_at <= ?`, id, now.UnixNano()); err != nil {
			return err
		}
		_, err := s.db.exec(ctx, tx, `INSERT INTO notify_tokens (hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)`,
			tokenHash(tok), id, now.UnixNano(), exp.UnixNano())
		return err
	})
	if err != nil {
		return Token{}, wrapDB(ctx, err)
	}
	return Token{Token: tok, ExpiresAt: time.Unix(0, exp.UnixNano()).UTC()}, nil
}

// tokenHash is the stored form of an opaque token: hex SHA-256.
func tokenHash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// isJWT reports whether tok has a JWT's three dot-separated parts (an
// opaque token, base64url, has no dot).
func isJWT(tok string) bool { return strings.Count(tok, ".") == 2 }

// Authenticate returns the user a bearer token stands for: an opaque token
// that Login issued and that has neither expired nor been revoked, or,
// with Options.JWTSecret, a JWT signed with it (HS256; exp required; nbf
// and iat honoured with Options.JWTLeeway) whose sub is a valid user id,
// or, with Options.VerifyJWT, a JWT it accepts.
// Anything else fails with ErrUnauthorized.
func (s *Service) Authenticate(ctx context.Context, token string) (string, error) {
	switch {
	case token == "":
		return "", fmt.Errorf("%w: no token", ErrUnauthorized)
	case len(token) > maxTokenLen:
		return "", fmt.Errorf("%w: token too long", ErrUnauthorized)
	case isJWT(token):
		return s.authenticateJWT(token)
	}
	var user string
	err := s.db.SQL.QueryRowContext(ctx, s.db.Rebind(`SELECT user_id FROM notify_tokens WHERE hash = ? AND expires_at > ?`),
		tokenHash(token), s.nowNano()).Scan(&user)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("%w: the token is unknown, expired or revoked", ErrUnauthorized)
	}
	if err != nil {
		return "", wrapDB(ctx, err)
	}
	return user, nil
}

// authenticateJWT checks a JWT as Authenticate describes.
func (s *Service) authenticateJWT(token string) (string, error) {
	if s.opts.VerifyJWT != nil {
		user, err := s.opts.VerifyJWT(token)
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrUnauthorized, err)
		}
		return user, nil
	}
	if len(s.opts.JWTSecret) == 0 {
		return "", fmt.Errorf("%w: JWTs are not accepted here", ErrUnauthorized)
	}
	var claims jwt.RegisteredClaims
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(s.opts.JWTLeeway),
		jwt.WithTimeFunc(s.now),
	)
	_, err := p.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return s.opts.JWTSecret, nil })
	if err != nil {
		return "", fmt.Errorf("%w: JWT: %w", ErrUnauthorized, err)
	}
	if err := ValidateUserID(claims.Subject); err != nil {
		return "", fmt.Errorf("%w: JWT sub: %s", ErrUnauthorized, strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
	}
	return claims.Subject, nil
}

// RevokeToken revokes an opaque token: it no longer authenticates. A JWT
// cannot be revoked (it is valid until its exp): ErrInvalid. An unknown
// token: ErrUnauthorized.
func (s *Service) RevokeToken(ctx context.Context, token string) error {
	if isJWT(token) {
		return fmt.Errorf("%w: a JWT cannot be revoked; it is valid until its exp", ErrInvalid)
	}
	res, err := s.db.exec(ctx, s.db.SQL, `DELETE FROM notify_tokens WHERE hash = ?`, tokenHash(token))
	if err != nil {
		return wrapDB(ctx, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return wrapDB(ctx, err)
	} else if n == 0 {
		return fmt.Errorf("%w: the token is unknown or already revoked", ErrUnauthorized)
	}
	return nil
}
