package sqlite

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub/store"
)

// The test binary re-executed with these variables set is one writer of
// TestTwoProcesses.
const (
	childEnv    = "RINGCAST_SQLITE_TEST_CHILD" // the store's path
	childIDEnv  = "RINGCAST_SQLITE_TEST_CHILD_ID"
	childDirEnv = "RINGCAST_SQLITE_TEST_CHILD_DIR" // ready, go and ack files
)

const (
	childClaims   = 30
	childPerClaim = 4
)

// childMain is a writer process: it opens the store, says it is ready,
// waits for the go file, then claims the topic childClaims times and
// appends after each claim until fenced. It writes every token it was
// given ("claim TOKEN") and every acknowledged message ("ack SEQ TOKEN")
// to its ack file.
func childMain() int {
	if err := child(); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

func child() error {
	path, dir := os.Getenv(childEnv), os.Getenv(childDirEnv)
	id, err := strconv.Atoi(os.Getenv(childIDEnv))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Open(ctx, path, Options{Synchronous: "normal"})
	if err != nil {
		return err
	}
	defer s.Close()
	out, err := os.Create(filepath.Join(dir, fmt.Sprintf("ack-%d", id)))
	if err != nil {
		return err
	}
	defer out.Close()
	w := bufio.NewWriter(out)
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("ready-%d", id)), nil, 0o600); err != nil {
		return err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go")); err == nil {
			break
		}
		if ctx.Err() != nil {
			return errors.New("no go file")
		}
		time.Sleep(time.Millisecond)
	}
	for c := range childClaims {
		l, err := s.Claim(ctx, "race", fmt.Sprintf("process-%d", id), 1)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "claim %d\n", l.Token)
		next := l.Seq + 1
		for k := range childPerClaim {
			n := 1 + (c+k+id)%3
			msgs := make([]store.Message, n)
			for i := range msgs {
				seq := next + uint64(i)
				msgs[i] = store.Message{Seq: seq, Time: int64(seq), Data: fmt.Appendf(nil, "%d %d", seq, l.Token)}
			}
			res, err := s.Append(ctx, []store.Append{{Topic: "race", Token: l.Token, Messages: msgs}})
			if err != nil {
				return err
			}
			if res[0] != nil {
				if !errors.Is(res[0], store.ErrFenced) {
					return res[0]
				}
				break
			}
			for _, m := range msgs {
				fmt.Fprintf(w, "ack %d %d\n", m.Seq, l.Token)
			}
			next += uint64(n)
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return out.Close()
}

// TestTwoProcesses races two writer processes for one topic in one file
// and checks the fencing property on what they committed.
func TestTwoProcesses(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "shared.db")
	// Create the file first, so that the children race for the topic and
	// not for the schema (which TestOpenConcurrent covers).
	openFile(t, path, Options{}).Close()

	cmds := make([]*exec.Cmd, 2)
	done := make([]chan error, 2)
	for i := range cmds {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+path, childIDEnv+"="+strconv.Itoa(i), childDirEnv+"="+dir)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[i] = cmd
		done[i] = make(chan error, 1)
		go func() {
			err := cmd.Wait()
			if err != nil {
				err = fmt.Errorf("%w: %s", err, stderr.String())
			}
			done[i] <- err
		}()
		pid := cmd.Process.Pid
		t.Cleanup(func() {
			select {
			case <-done[i]:
			default:
				// Still running: stop it by its PID and reap it.
				if p, err := os.FindProcess(pid); err == nil {
					p.Kill()
				}
				<-done[i]
			}
		})
	}
	deadline := time.Now().Add(30 * time.Second)
	for i := range cmds {
		for {
			if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("ready-%d", i))); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("child %d did not get ready", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	writeFile(t, filepath.Join(dir, "go"), nil)
	for i := range cmds {
		select {
		case err := <-done[i]:
			done[i] <- nil // for the cleanup
			if err != nil {
				t.Fatalf("child %d: %v", i, err)
			}
		case <-time.After(time.Until(deadline) + 30*time.Second):
			t.Fatalf("child %d did not finish", i)
		}
	}

	owner := map[uint64]int{}
	acked := map[uint64]uint64{} // seq -> token
	for i := range cmds {
		data, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("ack-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var a, b uint64
			switch {
			case strings.HasPrefix(line, "claim "):
				fmt.Sscanf(line, "claim %d", &a)
				if prev, dup := owner[a]; dup {
					t.Fatalf("token %d handed to child %d and child %d", a, prev, i)
				}
				owner[a] = i
			case strings.HasPrefix(line, "ack "):
				fmt.Sscanf(line, "ack %d %d", &a, &b)
				if _, dup := acked[a]; dup {
					t.Fatalf("seq %d acknowledged twice", a)
				}
				acked[a] = b
			}
		}
	}

	s := openFile(t, path, Options{})
	var log []store.Message
	after := uint64(0)
	for range 10000 {
		page, err := s.Read(t.Context(), "race", after, 500, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		log = append(log, page...)
		after = page[len(page)-1].Seq
	}
	if len(log) != len(acked) || len(log) == 0 {
		t.Fatalf("the log holds %d messages, the children were acknowledged %d", len(log), len(acked))
	}
	var last uint64
	fenced := 0
	for i, m := range log {
		var seq, token uint64
		fmt.Sscanf(string(m.Data), "%d %d", &seq, &token)
		if m.Seq != uint64(i+1) || seq != m.Seq {
			t.Fatalf("log position %d holds seq %d (%q): a gap", i, m.Seq, m.Data)
		}
		if acked[m.Seq] != token {
			t.Fatalf("seq %d committed with token %d, acknowledged with %d", m.Seq, token, acked[m.Seq])
		}
		if token < last {
			t.Fatalf("seq %d committed with token %d after token %d", m.Seq, token, last)
		}
		if token != last {
			fenced++
		}
		last = token
	}
	t.Logf("%d messages committed by two processes under %d different tokens", len(log), fenced)
}

// TestOpenConcurrent opens one new file from several goroutines at once:
// the schema is created once and every Open succeeds.
func TestOpenConcurrent(t *testing.T) {
	path := tempPath(t)
	errs := make(chan error, 4)
	stores := make(chan *Store, 4)
	for range 4 {
		go func() {
			s, err := Open(t.Context(), path, Options{})
			errs <- err
			stores <- s
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Open: %v", err)
		}
		if s := <-stores; s != nil {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		}
	}
}
