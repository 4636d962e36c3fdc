package cluster

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// run.sh picks free ports, says where every process listens, stops them all
// on SIGTERM, and keeps their logs, and the SQLite store its topic servers
// share, in the directory it was given.
func TestRunScript(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("run.sh needs curl, which is not installed")
	}
	bin := filepath.Dir(binary(t, wsBinary))
	binary(t, topicBinary)
	dir := filepath.Join(t.TempDir(), "run")

	cmd := exec.Command(bash, "run.sh", "--bin", bin, "--dir", dir)
	cmd.Env = childEnv("RINGCAST_STORE=") // run.sh's default store
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		out    strings.Builder
		ready  = make(chan struct{})
		exited = make(chan struct{})
	)
	go func() {
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			mu.Lock()
			out.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if sc.Text() == "cluster ready" {
				once.Do(func() { close(ready) })
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(exited)
	}()
	output := func() string {
		mu.Lock()
		defer mu.Unlock()
		return out.String()
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(2*shutdownTimeout + 10*time.Second):
			t.Errorf("run.sh still running after SIGTERM:\n%s", output())
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	t.Cleanup(stop)

	select {
	case <-ready:
	case <-exited:
		t.Fatalf("run.sh exited before the cluster was ready:\n%s", output())
	case <-time.After(60 * time.Second):
		t.Fatalf("run.sh not ready after 60 s:\n%s", output())
	}

	// Every process is listed with the addresses it picked.
	line := regexp.MustCompile(`(?m)^\s+(gateway-\d|topic-\d)\s+(\S+)\s+gossip (127\.0\.0\.1:\d+)\s+peer (127\.0\.0\.1:\d+)\s+PID (\d+)$`)
	procs := line.FindAllStringSubmatch(output(), -1)
	if len(procs) != 4 {
		t.Fatalf("run.sh listed %d processes, want 4:\n%s", len(procs), output())
	}
	for _, p := range procs {
		if strings.HasSuffix(p[3], ":0") || strings.HasSuffix(p[4], ":0") {
			t.Fatalf("%s listed with port 0: %q", p[1], p[0])
		}
		api := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(p[2], "ws://"), "http://"), "/socket/websocket")
		api = strings.TrimSuffix(api, "/api/cluster")
		var info clusterInfo
		getJSON(t, "http://"+api+"/api/cluster", &info)
		if info.Node != p[1] || len(info.Members) != 4 {
			t.Fatalf("%s at %s: node %q with %d members, want 4", p[1], api, info.Node, len(info.Members))
		}
	}

	stop()
	if !strings.Contains(output(), "logs kept in "+dir) {
		t.Fatalf("run.sh did not say where the logs are:\n%s", output())
	}
	for _, p := range procs {
		b, err := os.ReadFile(filepath.Join(dir, p[1]+".log"))
		if err != nil {
			t.Fatalf("log of %s: %v", p[1], err)
		}
		if !strings.Contains(string(b), " ready\"") {
			t.Fatalf("log of %s has no ready line:\n%s", p[1], b)
		}
		// Every process opens the one SQLite file in the directory: the
		// topic servers for their topics, the gateways, which own none,
		// for the notification system.
		want := "store=sqlite:" + filepath.Join(dir, "ringcast.db")
		if !strings.Contains(string(b), want) {
			t.Fatalf("log of %s does not say %s:\n%s", p[1], want, b)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ringcast.db")); err != nil {
		t.Fatalf("the shared store: %v", err)
	}
}
