// Package resume keeps a conversation whole across reconnects: an opt-in
// layer over wsreconnect, for both ends, that numbers and acknowledges
// messages and replays what a dropped connection lost. Reconnecting keeps
// the connection up; resuming keeps every message: each reliable message
// is read once, in order, however often the connection drops. The
// protocol, for implementing either end elsewhere, is PROTOCOL.md at the
// repository root.
//
// # Start here
//
// The client wraps the caller's dial function, as wsreconnect.Dial does:
//
//	c, err := resume.Dial(ctx, dial,
//		resume.WithConnOptions(wsreconnect.WithOnDisconnect(logIt)))
//	...
//	err = c.Write(ctx, websocket.MessageText, []byte("hello")) // reliable
//	typ, msg, err := c.Read(ctx)
//
// The server serves a function once per session, which reads and writes
// the session across its client's reconnects:
//
//	srv, err := resume.NewServer(func(ctx context.Context, s *resume.Session) {
//		for {
//			typ, msg, err := s.Read(ctx)
//			if err != nil {
//				return
//			}
//			s.Write(ctx, typ, msg)
//		}
//	})
//	http.Handle("/chat", srv)
//
// # Reliable and volatile messages
//
// Write sends a reliable message: numbered, kept in a bounded outbox until
// the peer acknowledges it, and sent again on the next connection if
// needed; the receiver drops copies. A full outbox makes Write wait
// (WithOutbox, WithOutboxFullError). Acknowledgements are cumulative and
// coalesced (WithAck): a few bytes per many messages. WriteVolatile sends
// a message only on the live connection, never again: presence, typing
// indicators, prices that the next one replaces.
//
// # When a session cannot be resumed
//
// The server keeps a session for a resume window after its connection
// ends (WithResumeWindow), in a Store: a MemoryStore by default, or one
// that servers share, so that a client resumes on any of them. When the
// server has forgotten the session (the window passed, or it restarted
// without a shared Store), the client gets a new one, and Client.Read
// says so, where the old session's messages end: a *NotRecoveredError,
// listing the messages the server never confirmed. Nothing is lost
// silently; the application resynchronizes.
//
// # Peers that break the protocol
//
// A malformed frame, a gap in the numbers, an acknowledgement of a message
// never sent or a peer exceeding its window closes the connection with the
// close code PROTOCOL.md names, and ends the session with a
// *ProtocolError. Every buffer is bounded by the windows both ends
// announce.
//
// The client builds for the browser (GOOS=js GOARCH=wasm); the server
// does not.
package resume
