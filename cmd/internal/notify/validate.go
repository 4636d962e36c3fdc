package notify

import (
	"fmt"
	"net/mail"
	"strings"
	"unicode/utf8"
)

// Limits of names and fields.
const (
	MaxTopicName   = 200  // bytes of a topic name
	MaxUserID      = 64   // bytes of a user id
	MaxEmail       = 254  // bytes of an email address
	MinPassword    = 8    // bytes of a password
	MaxPassword    = 72   // bytes of a password: bcrypt's limit
	MaxDescription = 1024 // bytes of a topic's description
)

// ValidateTopicName checks a notification topic's name: 1 to MaxTopicName
// bytes of ASCII letters, digits and "._-:", and not "." or "..", which
// URL paths cannot carry. The error wraps ErrInvalid.
func ValidateTopicName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: topic name is empty", ErrInvalid)
	case len(name) > MaxTopicName:
		return fmt.Errorf("%w: topic name is longer than %d bytes", ErrInvalid, MaxTopicName)
	case name == "." || name == "..":
		return fmt.Errorf("%w: topic name %q is reserved", ErrInvalid, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == ':') {
			return fmt.Errorf("%w: topic name may hold only letters, digits and . _ - :", ErrInvalid)
		}
	}
	return nil
}

// ValidateUserID checks a user id: 1 to MaxUserID bytes of lower-case
// ASCII letters, digits and "._-". JWT subjects must have this form too.
// The error wraps ErrInvalid.
func ValidateUserID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: user id is empty", ErrInvalid)
	case len(id) > MaxUserID:
		return fmt.Errorf("%w: user id is longer than %d bytes", ErrInvalid, MaxUserID)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: user id may hold only lower-case letters, digits and . _ -", ErrInvalid)
		}
	}
	return nil
}

// ValidateEmail checks an email address: a bare addr-spec (no display
// name) with a local part and a domain, at most MaxEmail bytes. The error
// wraps ErrInvalid.
func ValidateEmail(addr string) error {
	if addr == "" || len(addr) > MaxEmail {
		return fmt.Errorf("%w: email must be 1 to %d bytes", ErrInvalid, MaxEmail)
	}
	a, err := mail.ParseAddress(addr)
	if err != nil || a.Address != addr || a.Name != "" {
		return fmt.Errorf("%w: email %q is not an address like name@example.com", ErrInvalid, addr)
	}
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || local == "" || domain == "" || strings.ContainsAny(addr, " \t\r\n") {
		return fmt.Errorf("%w: email %q is not an address like name@example.com", ErrInvalid, addr)
	}
	return nil
}

// ValidatePassword checks a new password's length: MinPassword to
// MaxPassword bytes. The error wraps ErrInvalid.
func ValidatePassword(pw string) error {
	if len(pw) < MinPassword || len(pw) > MaxPassword {
		return fmt.Errorf("%w: password must be %d to %d bytes", ErrInvalid, MinPassword, MaxPassword)
	}
	return nil
}

// validateDescription checks a topic's description: valid UTF-8 of at
// most MaxDescription bytes, no control characters but newlines and tabs.
func validateDescription(d string) error {
	if len(d) > MaxDescription {
		return fmt.Errorf("%w: description is longer than %d bytes", ErrInvalid, MaxDescription)
	}
	if !utf8.ValidString(d) {
		return fmt.Errorf("%w: description is not valid UTF-8", ErrInvalid)
	}
	for _, r := range d {
		if (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f || (r >= 0x80 && r <= 0x9f) {
			return fmt.Errorf("%w: description holds a control character", ErrInvalid)
		}
	}
	return nil
}
