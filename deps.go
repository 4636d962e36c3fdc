package ringcast

import (
	_ "github.com/buraksezer/consistent"
	_ "github.com/cespare/xxhash/v2"
	_ "github.com/coder/websocket"
	_ "github.com/hashicorp/memberlist"
	_ "github.com/vmihailenco/msgpack/v5"
	_ "go.uber.org/goleak"
)
