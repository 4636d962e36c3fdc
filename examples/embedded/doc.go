// Command embedded shows a ringcast node and its WebSocket gateway inside an
// application's own HTTP server, next to the application's routes.
//
//	go run ./examples/embedded
//	websocat "ws://127.0.0.1:8080/socket/websocket?vsn=2.0.0"
//	["1","1","orders","phx_join",{}]
//	["1","1","orders","phx_reply",{"status":"ok","response":{}}]
//	# elsewhere: the application publishes on its own route
//	curl -d '{"id":42}' http://127.0.0.1:8080/orders
//	# the WebSocket client receives
//	["1",null,"orders","created",{"id":42}]
//
// Start more copies with -addr 127.0.0.1:8081 -join <gossip address of the
// first, which it logs at start> to form a cluster. Ctrl-C shuts down
// gracefully.
//
// # Files
//
// main.go is the whole program: a node, the gateway on it, and an HTTP
// server; main_test.go runs it and talks to it.
package main
