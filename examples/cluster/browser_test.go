package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ringcast/ringcast/examples/internal/browser"
)

// Where the browser tests keep their screenshots (written with
// RINGCAST_UPDATE_SCREENSHOTS=1).
var (
	notifyScreenshot = filepath.Join("..", "notify", "screenshot.png")
	statusScreenshot = "status.png"
)

// signUp signs a new user up on the notification page and waits until the
// page is signed in with its inbox channel joined.
func signUp(tab *browser.Tab, base, user string) {
	tab.Navigate(base + "/")
	tab.Fill("#signup-form [name=id]", user)
	tab.Fill("#signup-form [name=email]", user+"@example.com")
	tab.Fill("#signup-form [name=password]", "correct horse "+user)
	tab.Click("#signup-form button[type=submit]")
	tab.WaitText("#who", user)
	tab.WaitText("#conn", "live")
}

// TestNotificationPage drives the web page of the notification system in
// headless Chromium, against a ringcast-ws process: alice signs up and
// creates a topic, bob signs up in a browser of his own and subscribes,
// alice publishes, bob's page shows the notification live with an unread
// badge of 1, and reading it brings the badge to 0, on the page and in the
// server's read cursor. Neither page reports an error (a script error, a
// request the Content-Security-Policy or the guard refused).
func TestNotificationPage(t *testing.T) {
	b := browser.Start(t)
	ws := start(t, "ringcast-ws", wsBinary, nil,
		"--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--peer", "127.0.0.1:0",
		"--shutdown-timeout", shutdownTimeout.String(), "--failure-detection", "fast",
		"--store", filepath.Join(t.TempDir(), "ringcast.db"))
	base := "http://" + ws.addr("listen")

	alice := b.NewTab("alice")
	signUp(alice, base, "alice")
	alice.Fill("#create-form [name=name]", "deploys")
	alice.Fill("#create-form [name=description]", "production deploys")
	alice.Click("#create-form button[type=submit]")
	alice.WaitText("#view-title", "deploys")
	alice.WaitFor("the publish form of her own topic", `!document.getElementById("publish-form").hidden`)
	alice.WaitText(`#directory li[data-topic="deploys"] .meta`, "yours")
	alice.Fill("#create-form [name=name]", "incidents")
	alice.Fill("#create-form [name=description]", "pages and outages")
	alice.Click("#create-form button[type=submit]")
	alice.WaitText("#view-title", "incidents")
	alice.Click(`#directory li[data-topic="deploys"] a.name`)
	alice.WaitText("#view-title", "deploys")

	bob := b.NewTab("bob")
	signUp(bob, base, "bob")
	bob.WaitText(`#directory li[data-topic="deploys"] .meta`, "by alice")
	bob.Click(`#directory li[data-topic="deploys"] button.subscribe`)
	bob.WaitText(`#inbox li[data-topic="deploys"] .badge`, "0")
	bob.Click(`#directory li[data-topic="incidents"] button.subscribe`)
	bob.WaitText(`#inbox li[data-topic="incidents"] .badge`, "0")
	bob.WaitText("#unread-total", "0")

	alice.Fill("#publish-form [name=text]", "v2.3 is live")
	alice.Click("#publish-form button[type=submit]")
	alice.WaitText("#publish-result", "sent #1")
	alice.WaitText(`#feed li[data-seq="1"] .body`, "v2.3 is live")

	// Live, without a reload: the notification, its badge and the total.
	bob.WaitText(`#inbox li[data-topic="deploys"] .badge`, "1")
	bob.WaitText("#unread-total", "1")
	bob.WaitText(`#feed li[data-topic="deploys"][data-seq="1"] .body`, "v2.3 is live")
	bob.WaitFor("the notification marked unread", `document.querySelector('#feed li[data-seq="1"]').classList.contains("unread")`)
	browser.SaveScreenshot(t, notifyScreenshot, bob.Screenshot())

	bob.Click(`#inbox li[data-topic="deploys"] a.name`)
	bob.WaitText("#view-title", "deploys")
	bob.WaitFor("the topic's history", `document.querySelector('#feed li[data-seq="1"]') !== null`)
	bob.Click("#mark-read")
	bob.WaitText(`#inbox li[data-topic="deploys"] .badge`, "0")
	bob.WaitText("#unread-total", "0")

	// The server's cursor moved: bob's token, from his tab, reads his inbox.
	token := browser.Eval[string](bob, `JSON.parse(sessionStorage.getItem("ringcast.notify.session")).token`)
	req, err := http.NewRequest(http.MethodGet, base+"/api/inbox", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var inbox struct {
		Unread uint64 `json:"unread"`
		Topics []struct {
			Name    string `json:"name"`
			Unread  uint64 `json:"unread"`
			LastSeq uint64 `json:"last_seq"`
			ReadSeq uint64 `json:"read_seq"`
		} `json:"topics"`
	}
	err = json.NewDecoder(resp.Body).Decode(&inbox)
	_ = resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/inbox as bob = %d, %v", resp.StatusCode, err)
	}
	if inbox.Unread != 0 || len(inbox.Topics) != 2 || inbox.Topics[0].Name != "deploys" || inbox.Topics[0].ReadSeq != 1 || inbox.Topics[0].LastSeq != 1 {
		t.Fatalf("bob's inbox after reading on the page = %+v; want deploys read up to 1, nothing unread", inbox)
	}

	alice.CheckNoErrors()
	bob.CheckNoErrors()
}

// TestStatusPage opens the status page of a 4-node cluster of real
// processes (3 topic servers and a gateway) in headless Chromium: the
// gateway's page and a topic server's list all 4 members alive and draw
// the 3 that own topics on the ring; when a topic server stops, the page
// shows it gone and 3 alive, without a reload.
func TestStatusPage(t *testing.T) {
	b := browser.Start(t)
	c := startCluster(t, 1, 3)
	gw := "http://" + c.gateways[0].addr("listen")
	// Traffic for the counters and rates to show: a client joined to one
	// topic, and a publisher to four, until the test ends.
	client := dial(t, "subscriber", c.gateways[0].addr("listen"))
	client.send(`["1","1","status:0","phx_join",{}]`)
	client.expect(`["1","1","status:0","phx_reply",{"status":"ok","response":{}}]`)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			// Errors are expected while topic-3's topics move.
			_, _, _ = httpDo(http.MethodPost, gw+"/api/publish?topic=status:"+fmt.Sprint(i%4), `{"n":`+fmt.Sprint(i)+`}`)
		}
	})
	wg.Go(func() {
		// Read what the subscriber is sent, so it is never a slow consumer.
		for {
			if _, _, err := client.ws.Read(context.Background()); err != nil {
				return
			}
		}
	})
	defer func() { _ = client.ws.CloseNow() }()

	page := b.NewTab("gateway status")
	page.Navigate(gw + "/status")
	page.WaitText("#alive-count", "4")
	page.WaitFor("4 members alive in the table", `document.querySelectorAll('#members tbody tr[data-state="alive"]').length === 4`)
	for _, name := range []string{"gateway-1", "topic-1", "topic-2", "topic-3"} {
		page.WaitFor(name+" listed", fmt.Sprintf(`document.querySelector('#members tbody tr[data-member=%q]') !== null`, name))
	}
	page.WaitFor("3 arcs on the ring", `document.querySelectorAll('#ring path[data-member]').length === 3`)
	page.WaitText(`#config dd[data-key="--listen"]`, c.gateways[0].addr("listen"))
	page.WaitText(`#config dd[data-key="roles"]`, "gateway")
	page.WaitText("#live", "live")
	page.WaitFor("a rate of deliveries", `Number(document.getElementById("rate-delivered").textContent) > 0`)

	topic := b.NewTab("topic-1 status")
	topic.Navigate("http://" + c.topics[0].addr("http") + "/status")
	topic.WaitText("#alive-count", "4")
	topic.WaitText(`#config dd[data-key="--http"]`, c.topics[0].addr("http"))

	// Stop topic-3: the pages follow without a reload.
	mark := "ringcast" + fmt.Sprint(c.topics[2].cmd.Process.Pid)
	browser.Eval[bool](page, "window.__mark = "+fmt.Sprintf("%q", mark)+", true")
	c.topics[2].signal(syscall.SIGTERM)
	if code, _ := c.topics[2].waitExit(shutdownTimeout + testTimeout); code != 0 {
		t.Fatalf("topic-3 exited with %d", code)
	}
	page.WaitText("#alive-count", "3")
	page.WaitFor("topic-3 shown gone", `document.querySelector('#members tbody tr[data-member="topic-3"][data-state="gone"]') !== null`)
	page.WaitFor("2 arcs on the ring", `document.querySelectorAll('#ring path[data-member]').length === 2`)
	if got := browser.Eval[string](page, "window.__mark || ''"); got != mark {
		t.Fatalf("the page was reloaded (mark %q, want %q)", got, mark)
	}
	topic.WaitText("#alive-count", "3")
	if state := page.Text(`#members tbody tr[data-member="topic-3"] td.state`); !strings.HasPrefix(state, "gone") {
		t.Fatalf("topic-3's state reads %q; want gone …", state)
	}
	browser.SaveScreenshot(t, statusScreenshot, page.Screenshot())

	page.CheckNoErrors()
	topic.CheckNoErrors()
}
