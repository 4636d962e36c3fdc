// Package smtptest runs a real SMTP server (github.com/emersion/go-smtp)
// on 127.0.0.1 for the tests of ringcast's email notifications, and
// records every message it accepts.
//
// # Use
//
// Start serves on a free port and stops the server when the test ends:
//
//	srv := smtptest.Start(t)
//	// point the sender at srv.Addr(), trusting srv.ClientTLS()
//	msgs := srv.To("carol@example.com")
//
// New prepares a server without starting it: set its fields (Open, NoTLS,
// Implicit) first, or start it later on a chosen address to test a mail
// server that is down when the sender first tries it.
//
// # Behaviour
//
// By default the server offers STARTTLS with a self-signed certificate
// for 127.0.0.1 and localhost, and AUTH PLAIN (over TLS only) with User
// and Password; mail is refused before AUTH unless Open is set. Reject,
// FailNext and DelayData make it refuse recipients, fail transactions
// temporarily or answer slowly. Stop closes the listener and every
// connection; Restart serves again on the same address.
//
// It serves the end-to-end tests under examples; binaries do not link it.
// The email package's unit tests keep a smaller server of their own: an
// internal package here cannot be imported from cmd, and the module's root
// holds no package beside the fixed layout.
package smtptest
