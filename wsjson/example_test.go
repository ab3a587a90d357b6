//go:build !js

package wsjson_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
	"github.com/wsreconnect/wsreconnect/wsjson"
)

// A JSON request and its answer on a wsreconnect.Conn; here against a
// server that answers {"op":"subscribe"} with the first tick.
func Example() {
	var wg sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		defer wg.Done()
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		if _, _, err := ws.Read(r.Context()); err != nil { // the subscription
			return
		}
		ws.Write(r.Context(), websocket.MessageText, []byte(`{"symbol":"BTC","price":97000.5}`))
		<-ws.CloseRead(r.Context()).Done()
	}))
	defer func() { srv.Close(); wg.Wait() }()

	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	ctx := context.Background()
	c, err := wsreconnect.Dial(ctx, func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: srv.Client()})
	})
	if err != nil {
		fmt.Println("dial:", err)
		return
	}
	defer c.CloseNow()

	if err := wsjson.Write(ctx, c, map[string]string{"op": "subscribe", "topic": "BTC"}); err != nil {
		fmt.Println("write:", err)
		return
	}
	var tick struct {
		Symbol string  `json:"symbol"`
		Price  float64 `json:"price"`
	}
	if err := wsjson.Read(ctx, c, &tick); err != nil {
		fmt.Println("read:", err)
		return
	}
	fmt.Printf("%s at %.1f\n", tick.Symbol, tick.Price)
	// Output:
	// BTC at 97000.5
}
