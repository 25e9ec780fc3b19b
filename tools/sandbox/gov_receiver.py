"""A local stand-in for the government-services app's (郑好办) event endpoint.

Written from docs/integration.md, not from our sender (it imports nothing from `apps`): a
sender that drifts from the documented protocol fails its tests. It listens on 127.0.0.1 and
for every `POST` checks, in this order (401 with `{"error": <code>}` on the first failure):

1. `missing_headers` — `X-Exchange-Key`, `X-Exchange-Timestamp`, `X-Exchange-Nonce` and
   `X-Exchange-Signature` are all there, timestamp digits, nonce 16–128 hex digits;
2. `unknown_key` — the key is the configured one;
3. `bad_signature` — hex HMAC-SHA256 under the shared secret over
   `"{timestamp}\\n{nonce}\\n"` + the body bytes (compared in constant time);
4. `stale_timestamp` — within `max_skew` seconds (300) of the receiver's clock;
5. `replayed_nonce` — the nonce was not used before (nonces are remembered for good here).

Then the body must be `{"events": [...]}` (400 `bad_body` otherwise). Each event is applied
at most once (by `id`: a redelivered event is acknowledged, not applied again); per stream the
receiver keeps the figures of the highest `seq` seen (`current`), and an event whose `seq` is
not above it is kept in the log but marked stale. The reply is 200
`{"accepted": n, "duplicates": n, "stale": n}`.

Failing on demand: `down()` answers every request 503 until `up()`; `faults.next(...)` (the
sandboxes' `FaultPlan`: `status`, `delay`, `drop`) applies to requests in arrival order, before
authentication.

    with GovReceiver() as receiver:     # receiver.url, receiver.key_id, receiver.secret
        ...
        receiver.applied      # [event, ...] in the order they were applied
        receiver.current      # {stream: (seq, data)}

Run alone for a demo: `python -m tools.sandbox.gov_receiver --port 8705 --secret ...`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import signal
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tools.sandbox.base import Fault, FaultPlan

HOST = "127.0.0.1"
MAX_BODY_BYTES = 4 * 1024 * 1024
_NONCE = re.compile(r"^[0-9a-f]{16,128}$")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")


def expected_signature(secret: str, timestamp: str, nonce: str, body: bytes) -> str:
    message = f"{timestamp}\n{nonce}\n".encode("ascii") + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


@dataclass
class Request:
    headers: dict[str, str]
    body: bytes
    status: int | None = None
    error: str = ""
    at: float = field(default_factory=time.time)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    receiver: GovReceiver


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"
    timeout = 10

    def do_POST(self) -> None:
        self.server.receiver._handle(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class GovReceiver:
    def __init__(
        self,
        *,
        key_id: str = "zhenghaoban-sandbox",
        secret: str | None = None,
        port: int = 0,
        max_skew: int = 300,
    ) -> None:
        self.key_id = key_id
        self.secret = secret or secrets.token_hex(24)
        self.max_skew = max_skew
        self.faults = FaultPlan()
        self.requests: list[Request] = []
        self.applied: list[dict] = []
        self.stale: list[dict] = []
        self.current: dict[str, tuple[int, dict]] = {}
        self._seen_ids: set[str] = set()
        self._nonces: set[str] = set()
        self._down = False
        self._lock = threading.Lock()
        self._server = _Server((HOST, port), _Handler)
        self._server.receiver = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # --- lifecycle ---
    def __enter__(self) -> GovReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._server.server_address[1]}/events"

    def down(self) -> None:
        self._down = True

    def up(self) -> None:
        self._down = False

    # --- handling ---
    def _reply(self, h: _Handler, record: Request, status: int, data: dict) -> None:
        raw = json.dumps(data).encode()
        record.status = status
        record.error = str(data.get("error", ""))
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(raw)))
        h.end_headers()
        h.wfile.write(raw)

    def _handle(self, h: _Handler) -> None:
        length = int(h.headers.get("Content-Length", "0") or 0)
        if length > MAX_BODY_BYTES:
            h.send_error(413)
            return
        body = h.rfile.read(length) if length else b""
        record = Request(dict(h.headers.items()), body)
        with self._lock:
            self.requests.append(record)
        fault: Fault | None = self.faults.take()
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.drop:
                h.close_connection = True
                return
            if fault.status is not None:
                self._reply(h, record, fault.status, fault.body or {"error": "fault"})
                return
        if self._down:
            self._reply(h, record, 503, {"error": "unavailable"})
            return
        error = self.verify(record.headers, body)
        if error:
            self._reply(h, record, 401, {"error": error})
            return
        try:
            events = json.loads(body)["events"]
        except (ValueError, KeyError, TypeError):
            events = None
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            self._reply(h, record, 400, {"error": "bad_body"})
            return
        self._reply(h, record, 200, self._apply(events))

    def verify(self, headers: dict[str, str], body: bytes) -> str:
        """The documented checks; returns "" or the error code (records the nonce on success)."""
        key = headers.get("X-Exchange-Key", "")
        timestamp = headers.get("X-Exchange-Timestamp", "")
        nonce = headers.get("X-Exchange-Nonce", "")
        signature = headers.get("X-Exchange-Signature", "")
        if not (key and signature and _TIMESTAMP.match(timestamp) and _NONCE.match(nonce)):
            return "missing_headers"
        if not hmac.compare_digest(key.encode(), self.key_id.encode()):
            return "unknown_key"
        wanted = expected_signature(self.secret, timestamp, nonce, body)
        if not hmac.compare_digest(wanted.encode(), signature.encode()):
            return "bad_signature"
        if abs(time.time() - int(timestamp)) > self.max_skew:
            return "stale_timestamp"
        with self._lock:
            if nonce in self._nonces:
                return "replayed_nonce"
            self._nonces.add(nonce)
        return ""

    def _apply(self, events: list[dict]) -> dict[str, int]:
        counts = {"accepted": 0, "duplicates": 0, "stale": 0}
        with self._lock:
            for event in events:
                event_id = str(event.get("id"))
                if event_id in self._seen_ids:
                    counts["duplicates"] += 1
                    continue
                self._seen_ids.add(event_id)
                stream, seq = str(event.get("stream")), int(event.get("seq", 0))
                known = self.current.get(stream)
                if known is not None and seq <= known[0]:
                    self.stale.append(event)
                    counts["stale"] += 1
                    continue
                self.current[stream] = (seq, event.get("data", {}))
                self.applied.append(event)
                counts["accepted"] += 1
        return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Government-app event receiver (sandbox)")
    parser.add_argument("--port", type=int, default=8705)
    parser.add_argument("--key-id", default="zhenghaoban-sandbox")
    parser.add_argument("--secret", default=os.environ.get("SANDBOX_SECRET", ""))
    args = parser.parse_args(argv)
    with GovReceiver(key_id=args.key_id, secret=args.secret or None, port=args.port) as rx:
        print(f"government-app receiver on {rx.url}")
        print(f"  key id: {rx.key_id}")
        if not args.secret:
            print(f"  secret: {rx.secret}  (generated; pass --secret to fix it)")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            while not stop.wait(5):
                print(f"  applied {len(rx.applied)} events, {len(rx.current)} streams", flush=True)


if __name__ == "__main__":
    main()
