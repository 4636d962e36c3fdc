package access

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultReloadInterval is how often a FileVerifier looks at its key
// files, at most.
const DefaultReloadInterval = 5 * time.Second

// KeyFiles names the files a FileVerifier reads its public keys from.
type KeyFiles struct {
	PublicKey string // a PEM public key (LoadPublicKey); "" for none
	KeySet    string // a JSON Web Key Set (LoadKeySet); "" for none
}

// FileVerifier is a Verifier whose public keys come from files, read
// again when they change, so that keys can be rotated without a restart:
// at most every DefaultReloadInterval, on a verification, it compares the
// files' size and modification time with the last read, and when one
// changed builds a new Verifier from them. A file that no longer loads
// keeps the previous keys, with a warning. It is safe for concurrent use.
type FileVerifier struct {
	cfg   VerifierConfig // without the keys from files
	files KeyFiles
	every time.Duration

	cur     atomic.Pointer[Verifier]
	log     atomic.Pointer[slog.Logger]
	next    atomic.Int64 // unix nanoseconds of the next look at the files
	mu      sync.Mutex   // one reload at a time
	stamps  [2]stamp     // of the files as last read
	skipped []string     // keys of the set left out, as last read
}

// stamp is what tells a changed file.
type stamp struct {
	size int64
	mod  time.Time
}

func stampOf(path string) stamp {
	if path == "" {
		return stamp{}
	}
	st, err := os.Stat(path)
	if err != nil {
		return stamp{size: -1}
	}
	return stamp{size: st.Size(), mod: st.ModTime()}
}

// NewFileVerifier reads files and returns a FileVerifier of cfg (whose
// PublicKey and KeySet it sets from them). An error names the file.
func NewFileVerifier(cfg VerifierConfig, files KeyFiles) (*FileVerifier, error) {
	f := &FileVerifier{cfg: cfg, files: files, every: DefaultReloadInterval}
	f.log.Store(slog.New(slog.DiscardHandler))
	v, skipped, stamps, err := f.load()
	if err != nil {
		return nil, err
	}
	f.cur.Store(v)
	f.stamps, f.skipped = stamps, skipped
	f.next.Store(f.now().Add(f.every).UnixNano())
	return f, nil
}

func (f *FileVerifier) now() time.Time {
	if f.cfg.Clock != nil {
		return f.cfg.Clock()
	}
	return time.Now()
}

// SetLogger sets where reloads are logged. nil discards.
func (f *FileVerifier) SetLogger(l *slog.Logger) {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	f.log.Store(l)
}

// Skipped describes the keys of the set that were left out (see
// KeySet.Skipped), as last read.
func (f *FileVerifier) Skipped() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.skipped...)
}

// load reads the files and builds a Verifier.
func (f *FileVerifier) load() (*Verifier, []string, [2]stamp, error) {
	// The stamps are taken first: a file written during the read is read
	// again next time.
	stamps := [2]stamp{stampOf(f.files.PublicKey), stampOf(f.files.KeySet)}
	cfg := f.cfg
	var skipped []string
	var err error
	if f.files.PublicKey != "" {
		if cfg.PublicKey, err = LoadPublicKey(f.files.PublicKey); err != nil {
			return nil, nil, stamps, fmt.Errorf("public key: %w", err)
		}
	}
	if f.files.KeySet != "" {
		if cfg.KeySet, err = LoadKeySet(f.files.KeySet); err != nil {
			return nil, nil, stamps, fmt.Errorf("key set: %w", err)
		}
		skipped = cfg.KeySet.Skipped
	}
	v, err := NewVerifier(cfg)
	return v, skipped, stamps, err
}

// Verify verifies token with the keys of the files as they are now (see
// Verifier.Verify).
func (f *FileVerifier) Verify(token string) (*Claims, error) {
	f.maybeReload()
	return f.cur.Load().Verify(token)
}

// maybeReload reloads the files if they changed, at most every f.every,
// without making verifications wait for it.
func (f *FileVerifier) maybeReload() {
	if f.files == (KeyFiles{}) {
		return
	}
	now := f.now()
	next := f.next.Load()
	if now.UnixNano() < next || !f.next.CompareAndSwap(next, now.Add(f.every).UnixNano()) {
		return
	}
	if !f.mu.TryLock() {
		return
	}
	defer f.mu.Unlock()
	if [2]stamp{stampOf(f.files.PublicKey), stampOf(f.files.KeySet)} == f.stamps {
		return
	}
	v, skipped, stamps, err := f.load()
	f.stamps = stamps // a bad file is reported once, not at every look
	log := f.log.Load()
	if err != nil {
		log.Warn("client token keys changed but do not load; the previous keys stay", "err", err)
		return
	}
	f.cur.Store(v)
	f.skipped = skipped
	log.Info("client token keys reloaded", "public_key", f.files.PublicKey, "jwks", f.files.KeySet, "algorithms", v.Algorithms())
	for _, s := range skipped {
		log.Warn("--jwks: key left out", "key", s)
	}
}

// Algorithms returns the JWT algorithms accepted now.
func (f *FileVerifier) Algorithms() []string {
	return f.cur.Load().Algorithms()
}
