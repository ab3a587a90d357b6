"""A WebSocket server built on Python's websockets (10.x, legacy asyncio API),
started by the faulttest Go tests as a real third-party peer.

Run with Debian's system interpreter (/usr/bin/python3), which is where the
python3-websockets package installs. It listens on 127.0.0.1 on a free port,
prints that port on stdout once it accepts connections, and serves until it
is killed. The request path picks the behaviour:

  /echo                       echo every message
  /close?code=N&reason=R&after=K
                              echo K messages (default 0), then close with N
  /abort?after=K              echo K messages, then transport.abort(): the TCP
                              connection ends with RST, no close frame (1006)
  /pause?after=K              echo K messages, then transport.pause_reading():
                              the socket stays open but nothing is read or
                              answered again (a dead peer)
  /reject?status=S&retry_after=V
                              answer the handshake with HTTP status S and, if
                              given, a Retry-After header of V (verbatim)
"""

import asyncio
import http
import sys
import urllib.parse

import websockets


def parse(path):
    u = urllib.parse.urlsplit(path)
    q = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
    return u.path, q


async def process_request(path, headers):
    route, q = parse(path)
    if route != "/reject":
        return None
    status = http.HTTPStatus(int(q.get("status", "503")))
    out = [("Content-Type", "text/plain")]
    if "retry_after" in q:
        out.append(("Retry-After", q["retry_after"]))
    return status, out, b"rejected by pyserver\n"


async def echo(ws, n):
    """Echo n messages (n < 0: until the connection ends)."""
    while n != 0:
        msg = await ws.recv()
        await ws.send(msg)
        n -= 1


async def handler(ws):
    route, q = parse(ws.path)
    after = int(q.get("after", "0"))
    try:
        if route == "/echo":
            await echo(ws, -1)
        elif route == "/close":
            await echo(ws, after)
            await ws.close(code=int(q.get("code", "1000")), reason=q.get("reason", ""))
        elif route == "/abort":
            await echo(ws, after)
            ws.transport.abort()
        elif route == "/pause":
            await echo(ws, after)
            ws.transport.pause_reading()
            # Hold the connection open and silent; the process is killed at
            # the end of the test.
            await asyncio.Event().wait()
        else:
            await ws.close(code=1008, reason="unknown path " + route)
    except websockets.ConnectionClosed:
        pass


async def main():
    async with websockets.serve(
        handler,
        "127.0.0.1",
        0,
        process_request=process_request,
        ping_interval=None,  # the client's heartbeat is under test, not ours
        max_size=None,
        compression=None,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(port, flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
