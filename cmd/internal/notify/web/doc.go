// Package web is the web page of the ringcast notification system, served
// by the gateway at "/": sign up, sign in, create topics, subscribe,
// publish to one's own topics, and an inbox that updates live, with unread
// badges and marking read.
//
// # What it uses
//
// The page is static: index.html, app.js and app.css, with the official
// Phoenix JavaScript client (phoenix.js 1.8.16 from the npm package
// "phoenix", priv/static/phoenix.js, unchanged; MIT licence in
// phoenix-LICENSE.md), all embedded in the binary: no build step, no CDN.
// It talks to the same origin only:
//
//   - the HTTP API of package notify (/api/users, /api/tokens,
//     /api/topics, /api/topics/{name}/notifications, /subscription,
//     /read, /api/read, /api/inbox), JSON bodies with Content-Type
//     application/json and the token as Authorization: Bearer, which the
//     binaries' guard accepts from a same-origin page;
//   - the "inbox" Phoenix channel of package inbox on /socket/websocket,
//     connected with the token as phoenix.js's authToken (sent in the
//     Sec-WebSocket-Protocol header, never in the URL), joined with the
//     last positions it saw so that a rejoin after a lost connection is
//     sent exactly what it missed.
//
// The token is kept in the tab's sessionStorage: a reload keeps the
// session, another tab may sign in as another user.
//
// # Security
//
// Every answer carries ContentSecurityPolicy (scripts and styles of the
// page's own origin only, no inline code, connections to its own origin
// only, no framing), nosniff and no-referrer. The page writes what users
// sent as text, never as HTML.
//
// # Files
//
//   - web.go: Handler, Register, the embedded files.
//   - assets/: index.html, app.js, app.css, phoenix.js,
//     phoenix-LICENSE.md.
package web
