"""A server of the resume protocol, written from PROTOCOL.md alone (at the
root of the repository: "The resume protocol, version 1"), in Python on
websockets (10.x, legacy asyncio API). Its application echoes: each
reliable message it reads is written back as a reliable message, each
volatile one as a volatile one, with the same WebSocket type. Sessions are
kept in this process's memory: a restarted server has forgotten them.

The faulttest Go tests run it beside the Go server (package resume), as a
second, independent implementation of the same document: both must pass
the same interoperability tests.

Run with Debian's system interpreter (/usr/bin/python3), which is where
the python3-websockets package installs. It listens on 127.0.0.1 on a
free port (or --port), prints that port on stdout once it accepts
connections, and serves until it is killed. Section numbers (§) below
are PROTOCOL.md's.
"""

import argparse
import asyncio
import base64
import collections
import os
import sys

import websockets

MAX_NUMBER = 2**63 - 1  # §2.1
MAX_WCOUNT = 1048576  # §2.2
MAX_BYTES = 1073741824  # §2.2: wbytes, maxmsg, length
MAX_CONTROL = 256  # §2.4: H W S A E
MAX_HEADER = 33  # §12: an M or V header
SESSION_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")

# The fields of each kind, in order (§2.2).
FIELDS = {
    ord("H"): ("version", "session", "ack", "conn", "wcount", "wbytes", "maxmsg"),
    ord("W"): ("version", "session", "resumed", "ack", "wcount", "wbytes", "maxmsg"),
    ord("S"): ("conn",),
    ord("M"): ("seq", "length"),
    ord("V"): ("length",),
    ord("A"): ("seq",),
    ord("E"): (),
}
# The range of each numeric field (§2.2).
RANGES = {
    "ack": (0, MAX_NUMBER),
    "conn": (1, MAX_NUMBER),
    "seq": (1, MAX_NUMBER),
    "wcount": (1, MAX_WCOUNT),
    "wbytes": (1, MAX_BYTES),
    "maxmsg": (1, MAX_BYTES),
    "length": (0, MAX_BYTES),
}


class ProtocolError(Exception):
    """A violation of the protocol: close with code, reason (§11.1)."""

    def __init__(self, reason, code=1002):
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Frame:
    __slots__ = ("kind", "text", "f", "payload")


def parse(msg):
    """Decodes one WebSocket message (str: text, bytes: binary) as a frame
    (§2.4), or raises ProtocolError. The payload of M and V is kept as the
    message's own type: a str for a text message (the header is ASCII, so
    character and byte offsets agree up to the payload)."""
    text = isinstance(msg, str)
    data = msg.encode() if text else msg
    if len(data) < 2 or data[1] != 0x20:
        raise ProtocolError("malformed frame: too short")
    kind = data[0]
    names = FIELDS.get(kind)
    if names is None:
        raise ProtocolError("malformed frame: unknown kind")
    control = kind not in (ord("M"), ord("V"))
    if control and (not text or len(data) > MAX_CONTROL):
        raise ProtocolError("malformed frame: a control frame sent as binary or too long")
    fr = Frame()
    fr.kind, fr.text, fr.f, fr.payload = chr(kind), text, {}, None
    pos = 2
    for name in names:
        end = data.find(b" ", pos)
        if end < 0:
            raise ProtocolError("malformed frame: a missing field")
        fr.f[name] = field(name, data[pos:end])
        pos = end + 1
    if control:
        if pos != len(data):
            raise ProtocolError("malformed frame: bytes after the last field")
        return fr
    if len(data) - pos != fr.f["length"]:
        raise ProtocolError("length mismatch")
    fr.payload = msg[pos:]  # pos is a byte offset in the ASCII header
    return fr


def field(name, b):
    if not b:
        raise ProtocolError("malformed frame: an empty field")
    if name == "version":
        if b != b"1":
            raise ProtocolError("unsupported version")
        return 1
    if name == "session":
        if len(b) > 64 or any(c not in SESSION_CHARS for c in b):
            raise ProtocolError("malformed frame: a bad session id")
        return b.decode()
    if name == "resumed":
        if b not in (b"0", b"1"):
            raise ProtocolError("malformed frame: a bad flag")
        return b == b"1"
    if len(b) > 19 or not b.isdigit() or (b[0] == ord("0") and len(b) > 1):
        raise ProtocolError("malformed frame: a bad number")
    n = int(b)
    lo, hi = RANGES[name]
    if not lo <= n <= hi:
        raise ProtocolError("malformed frame: a number out of range")
    return n


def encode_data(kind_seq, payload, text):
    """An M frame (kind_seq "M 7 ") or a V frame ("V "), as the payload's
    WebSocket type (§2.3)."""
    if text:
        return kind_seq + str(len(payload.encode())) + " " + payload
    return (kind_seq + str(len(payload)) + " ").encode() + payload


def close_reason(reason):
    r = ("resume: " + reason).encode()[:123]
    return r.decode(errors="ignore")


class SessionEnded(Exception):
    pass


class Config:
    def __init__(self, a):
        self.wcount, self.wbytes, self.maxmsg = a.window_count, a.window_bytes, a.max_message
        self.peer_wcount, self.peer_wbytes = a.peer_window_count, a.peer_window_bytes
        self.resume_window = a.resume_window
        self.max_sessions = a.max_sessions
        self.handshake_timeout = a.handshake_timeout
        self.ack_every, self.ack_delay = a.ack_every, a.ack_delay
        self.volatile_backlog = a.volatile_backlog


class Session:
    """One session (§3): both directions, and the connection serving it."""

    def __init__(self, server, sid):
        self.server, self.cfg, self.id = server, server.cfg, sid
        self.ended = False
        self.conn = None  # the attached Connection
        self.expiry = None  # the timer forgetting the session (§9)
        self.peer = (1, 1, 1)  # the client's wcount, wbytes, maxmsg (latest hello)
        # Client to server (§3, §4, §5).
        self.recv = 0  # highest number received
        self.consumed = 0  # highest number the application has read
        self.ack_sent = 0  # highest acknowledgement sent (A or W)
        self.unacked_in = collections.deque()  # (seq, size) received above ack_sent
        self.unacked_in_bytes = 0
        self.consumed_bytes = 0  # payload bytes of (ack_sent, consumed]
        self.ack_timer = None
        self.ack_fired = False
        self.inbox = collections.deque()  # (seq or 0 for volatile, payload)
        self.volatiles = 0
        self.readable = asyncio.Event()
        # Server to client: the outbox (§3), (seq, size, frame).
        self.outbox = collections.deque()
        self.out_bytes = 0
        self.sent = 0  # highest number written
        self.acked = 0  # highest acknowledgement received
        self.room = asyncio.Event()
        self.app = asyncio.ensure_future(self.run_app())

    # The application: echo.

    async def run_app(self):
        try:
            while True:
                seq, payload = await self.read()
                if seq:
                    await self.write(payload)
                else:
                    self.write_volatile(payload)
        except SessionEnded:
            pass

    async def read(self):
        while not self.inbox:
            if self.ended:
                raise SessionEnded()
            self.readable.clear()
            await self.readable.wait()
        if self.ended:
            raise SessionEnded()
        seq, payload = self.inbox.popleft()
        if not seq:
            self.volatiles -= 1
            return 0, payload
        # §4: acknowledge only what the application has read.
        self.consumed = seq
        self.consumed_bytes += payload_size(payload)
        if self.ack_timer is None:
            self.ack_timer = asyncio.get_running_loop().call_later(self.cfg.ack_delay, self.ack_quiet)
        if self.conn and self.ack_due():
            self.conn.wake.set()
        return seq, payload

    def ack_quiet(self):
        self.ack_timer, self.ack_fired = None, True
        if self.conn:
            self.conn.wake.set()

    def ack_due(self):
        """§4: at half the client's window at the latest, every ack_every
        messages, or after the quiet time."""
        k = self.consumed - self.ack_sent
        if k <= 0:
            return False
        wcount, wbytes, _ = self.peer
        return 2 * k >= wcount or 2 * self.consumed_bytes >= wbytes or k >= self.cfg.ack_every or self.ack_fired

    def acknowledged(self, n):
        """Counts n as acknowledged to the client (§5: from the moment it is
        decided), for the window check."""
        if n <= self.ack_sent:
            return
        self.ack_sent = n
        while self.unacked_in and self.unacked_in[0][0] <= n:
            self.unacked_in_bytes -= self.unacked_in.popleft()[1]
        self.consumed_bytes = 0 if n >= self.consumed else self.consumed_bytes
        self.ack_fired = False
        if self.ack_timer is not None:
            self.ack_timer.cancel()
            self.ack_timer = None

    async def write(self, payload):
        """Writes a reliable message: waits for room in the outbox (the
        window announced, §5)."""
        size = payload_size(payload)
        while True:
            if self.ended:
                raise SessionEnded()
            if len(self.outbox) < self.cfg.wcount and self.out_bytes + size <= self.cfg.wbytes:
                break
            self.room.clear()
            await self.room.wait()
        self.sent += 1
        frame = encode_data("M %d " % self.sent, payload, isinstance(payload, str))
        self.outbox.append((self.sent, size, frame))
        self.out_bytes += size
        if self.conn:
            self.conn.send(frame)

    def write_volatile(self, payload):
        """§8: only on the live connection; dropped otherwise."""
        if self.conn:
            self.conn.send(encode_data("V ", payload, isinstance(payload, str)))

    # Frames from the client (§3, §4, §5, §8, §9).

    def on_message(self, fr):
        seq = fr.f["seq"]
        if seq <= self.recv:
            return  # a copy (§3)
        if seq > self.recv + 1:
            raise ProtocolError("message %d after %d: a gap" % (seq, self.recv))
        size = payload_size(fr.payload)
        wcount, wbytes, _ = self.peer
        if seq - self.ack_sent > wcount or self.unacked_in_bytes + size > wbytes:
            raise ProtocolError("window exceeded", 1008)
        self.recv = seq
        self.unacked_in.append((seq, size))
        self.unacked_in_bytes += size
        self.inbox.append((seq, fr.payload))
        self.readable.set()

    def on_volatile(self, fr):
        if self.volatiles >= self.cfg.volatile_backlog:
            return  # §8: a receiver MAY drop what it cannot hold
        self.volatiles += 1
        self.inbox.append((0, fr.payload))
        self.readable.set()

    def on_ack(self, n):
        if n > self.sent:
            raise ProtocolError("ack for a message never sent")
        while self.outbox and self.outbox[0][0] <= n:
            self.out_bytes -= self.outbox.popleft()[1]
        self.acked = max(self.acked, n)
        self.room.set()

    # Connections.

    def attach(self, conn, hello, resumed):
        """§6.2: apply the hello's ack (if resumed), take the session over
        from an older connection, queue the resent messages, and return
        W and S, which the caller sends before anything else."""
        if resumed:
            err = None
            if hello["ack"] > self.sent:
                err = ProtocolError("ack for a message never sent")
            elif hello["ack"] < self.acked:
                err = ProtocolError("resumed without messages it had acknowledged")
            if err is not None:
                # §6.2.3: the session cannot go on consistently.
                self.end(err.code, err.reason)
                raise err
            self.on_ack(hello["ack"])
        old, self.conn = self.conn, conn
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None
        self.peer = (hello["wcount"], hello["wbytes"], hello["maxmsg"])
        ack = self.consumed
        self.acknowledged(ack)
        cfg = self.cfg
        # §5: announce at least what is held unacknowledged.
        welcome = "W 1 %s %d %d %d %d %d " % (
            self.id, 1 if resumed else 0, ack,
            max(cfg.wcount, len(self.outbox)), max(cfg.wbytes, self.out_bytes), cfg.maxmsg)
        for _, _, frame in self.outbox:  # §7
            conn.send(frame)
        if old is not None:
            old.close(1008, "session taken over")
        return welcome, "S %d " % hello["conn"]

    def detach(self, conn):
        if self.conn is not conn:
            return
        self.conn = None
        if not self.ended:
            self.expiry = asyncio.get_running_loop().call_later(self.cfg.resume_window, self.end)

    def end(self, code=None, reason=""):
        """Forgets the session (§9), closing its connection with code if
        one is attached."""
        if self.ended:
            return
        self.ended = True
        if self.conn is not None and code is not None:
            self.conn.close(code, reason)
        self.server.sessions.pop(self.id, None)
        for t in (self.expiry, self.ack_timer):
            if t is not None:
                t.cancel()
        self.readable.set()
        self.room.set()


def payload_size(payload):
    return len(payload.encode()) if isinstance(payload, str) else len(payload)


class Connection:
    """One WebSocket connection: its reader is the handler, its writer the
    task run_writer, the only one that sends on it (§16: one writer)."""

    def __init__(self, ws):
        self.ws = ws
        self.session = None
        self.queue = collections.deque()
        self.wake = asyncio.Event()
        self.writer = None  # the task run_writer, once the handshake is done
        self.closing = None  # the close under way, a task

    def send(self, frame):
        self.queue.append(frame)
        self.wake.set()

    def close(self, code, reason):
        if self.closing is None:
            self.closing = asyncio.ensure_future(self.ws.close(code, close_reason(reason)))

    async def run_writer(self):
        ws = self.ws
        try:
            while self.closing is None:
                s = self.session
                if s.conn is self and s.ack_due():
                    n = s.consumed
                    s.acknowledged(n)
                    await ws.send("A %d " % n)
                    continue
                if self.queue:
                    await ws.send(self.queue.popleft())
                    continue
                self.wake.clear()
                await self.wake.wait()
        except websockets.ConnectionClosed:
            pass


class Server:
    def __init__(self, cfg):
        self.cfg = cfg
        self.sessions = {}

    def new_session(self):
        while True:
            # §3: unguessable: 128 random bits, base64url.
            sid = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
            if sid not in self.sessions:
                break
        s = Session(self, sid)
        self.sessions[sid] = s
        return s

    async def handler(self, ws):
        conn = Connection(ws)
        try:
            await self.serve(conn)
        except ProtocolError as e:
            if conn.session is not None and conn.session.conn is conn:
                conn.session.end()  # §11.1: the session is over
            conn.close(e.code, e.reason)
        except websockets.ConnectionClosed:
            pass
        finally:
            s = conn.session
            if s is not None:
                s.detach(conn)
            if conn.writer is not None:
                conn.writer.cancel()
                try:
                    await conn.writer
                except asyncio.CancelledError:
                    pass
            if conn.closing is not None:
                await conn.closing
            ws.transport.abort()  # the connection is over, whatever its state

    async def serve(self, conn):
        ws, cfg = conn.ws, self.cfg
        # §6.2.1: the hello first, within the handshake timeout.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + cfg.handshake_timeout
        try:
            msg = await asyncio.wait_for(ws.recv(), cfg.handshake_timeout)
        except asyncio.TimeoutError:
            return
        try:
            hello = parse(msg)
        except ProtocolError:
            # §11.2: a hello cut short by the connection's end is no
            # violation: if nothing more arrives, the connection is gone.
            try:
                await asyncio.wait_for(ws.recv(), max(0, deadline - loop.time()))
            except (websockets.ConnectionClosed, asyncio.TimeoutError):
                return
            raise
        if hello.kind != "H":
            raise ProtocolError("expected a hello")  # §6.2.1
        h = hello.f
        if h["wcount"] > cfg.peer_wcount or h["wbytes"] > cfg.peer_wbytes:
            raise ProtocolError("window too large", 1008)  # §6.2.2
        s = self.sessions.get(h["session"]) if h["session"] != "-" else None
        resumed = s is not None
        if not resumed:
            if len(self.sessions) >= cfg.max_sessions:
                raise ProtocolError("too many sessions", 1013)
            s = self.new_session()
        conn.session = s
        welcome, start = s.attach(conn, h, resumed)
        # §6.2.5-6: W, then S, before anything else; then the writer.
        await ws.send(welcome)
        await ws.send(start)
        conn.writer = asyncio.ensure_future(conn.run_writer())
        await self.read_loop(conn, s)

    async def read_loop(self, conn, s):
        suspect = None
        while True:
            msg = await conn.ws.recv()
            try:
                fr = parse(msg)
            except ProtocolError as e:
                # §11.2: malformed is a violation unless the connection
                # ends before another frame arrives.
                if suspect is None:
                    suspect = e
                    continue
                raise suspect
            if suspect is not None:
                raise suspect
            if s.conn is not conn:
                return  # taken over: its close is under way
            if fr.kind == "M":
                s.on_message(fr)
            elif fr.kind == "V":
                s.on_volatile(fr)
            elif fr.kind == "A":
                s.on_ack(fr.f["seq"])
            elif fr.kind == "E":
                s.end()  # §9: forget it at once, and close with 1000
                conn.close(1000, "")
                return
            else:
                raise ProtocolError("unexpected %s frame" % fr.kind)


async def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--window-count", type=int, default=1024)
    p.add_argument("--window-bytes", type=int, default=1 << 20)
    p.add_argument("--max-message", type=int, default=32 << 10)
    p.add_argument("--peer-window-count", type=int, default=4096)
    p.add_argument("--peer-window-bytes", type=int, default=4 << 20)
    p.add_argument("--resume-window", type=float, default=120.0, help="seconds")
    p.add_argument("--max-sessions", type=int, default=10000)
    p.add_argument("--handshake-timeout", type=float, default=10.0, help="seconds")
    p.add_argument("--ack-every", type=int, default=64)
    p.add_argument("--ack-delay", type=float, default=0.1, help="seconds")
    p.add_argument("--volatile-backlog", type=int, default=256)
    args = p.parse_args()
    cfg = Config(args)
    server = Server(cfg)
    async with websockets.serve(
        server.handler,
        "127.0.0.1",
        args.port,
        # §5: accept maxmsg of payload plus the largest header.
        max_size=cfg.maxmsg + MAX_HEADER,
        compression=None,
        ping_interval=None,  # the client's heartbeat finds dead connections
    ) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        print(port, flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
