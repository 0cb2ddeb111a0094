"""A stand-in Hugging Face Hub on 127.0.0.1 serving the model-listing API from a world of models.

The real `huggingface_hub` client is pointed at it with `HfApi(endpoint=hub.url)`. It speaks the Hub's
`GET /api/models` (sort, author, search, filter, limit, expand, keyset cursor and `Link: rel="next"`
pagination) and `GET /api/models/<repo_id>`, and injects the faults of `flows.standin_faults` on demand.
Records are served as given, so hostile worlds (no id, wrong types) reach the client unchanged; a private one
(`"private": true`) is listed only to a request with a token, as the Hub lists the private repos a token may read.
With a quota, it counts listing requests in fixed windows as the Hub does, telling what is left on every answer
(`RateLimit`, `RateLimit-Policy`) and answering 429 past it until the window ends.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gc
import hashlib
import json
import math
import signal
import socket
import sys
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from flows.standin_faults import Fault, Faults, Plan, latency

DEFAULT_PAGE_SIZE = 1000
LOAD_BATCH = 10_000
SORT_KEYS = ("createdAt", "downloads", "lastModified", "likes", "trendingScore")
DATE_KEYS = frozenset({"createdAt", "lastModified"})
DEFAULT_FIELDS = (
    "author", "downloads", "likes", "tags", "pipeline_tag", "library_name", "createdAt", "private",
)
# The properties `expand` accepts (huggingface_hub's ExpandModelProperty_T); the key in the JSON is the name.
EXPAND_PROPERTIES = frozenset({
    "author", "baseModels", "cardData", "childrenModelCount", "config", "createdAt", "disabled", "downloads",
    "downloadsAllTime", "evalResults", "gated", "gguf", "inference", "inferenceProviderMapping",
    "lastModified", "library_name", "likes", "mask_token", "model-index", "pipeline_tag", "private",
    "resourceGroup", "safetensors", "sha", "siblings", "spaces", "tags", "transformersInfo", "trendingScore",
    "usedStorage", "widgetData",
})
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})  # never logged
SINGLE_MODEL_ONLY = frozenset({"baseModels", "childrenModelCount", "usedStorage"})
OBJECT_ID_BASE = 0x6500000000000000_00000000  # `_id`s look like the Hub's (24 hex digits), increasing
RELATIONS = ("finetune", "adapter", "quantized", "merge")
HTML_ERROR = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
    b"<body><h1>502 Bad Gateway</h1><p>The upstream server is not responding.</p></body></html>\n"
)
RATE_LIMITED = {"error": "You have been rate-limited; you can retry this action later."}
MALFORMED = b'[{"_id": "650000000000000000000000", "id": "broken/json",, } oops'


def load_world(path: str | Path) -> list[dict]:
    """The models of a JSONL world file, one JSON value per line (blank lines skipped)."""
    with open(path, encoding="utf-8") as lines:
        numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    models: list = []
    shared: dict[str, str] = {}
    collecting = gc.isenabled()
    gc.disable()  # millions of new containers would trigger a collection every few thousand parsed lines
    try:
        for start in range(0, len(numbered), LOAD_BATCH):
            batch = numbered[start:start + LOAD_BATCH]
            try:  # one parse per batch is about twice as fast as one per line
                parsed = json.loads("[" + ",".join(line for _, line in batch) + "]")
            except json.JSONDecodeError:
                parsed = [_parse_line(path, n, line) for n, line in batch]
            models.extend(_share_strings(m, shared) for m in parsed)
    finally:
        if collecting:
            gc.enable()
    return models


def _parse_line(path: str | Path, number: int, line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}:{number}: not JSON ({error.msg})") from None


def _share_strings(record: Any, shared: dict[str, str]) -> Any:
    """The record with its repeated strings (tags, author, task, library) stored once for the whole world."""
    if type(record) is dict:
        tags = record.get("tags")
        if type(tags) is list:
            record["tags"] = [shared.setdefault(t, t) if type(t) is str else t for t in tags]
        for key in ("author", "pipeline_tag", "library_name"):
            value = record.get(key)
            if type(value) is str:
                record[key] = shared.setdefault(value, value)
    return record


def write_world(models: Iterable[Any], path: str | Path) -> Path:
    """Write models as JSONL, one per line, and return the path."""
    path = Path(path)
    with open(path, "w", encoding="utf-8") as out:
        for model in models:
            out.write(json.dumps(model, separators=(",", ":"), default=str))
            out.write("\n")
    return path


def _sort_value(record: Any, key: str) -> Any:
    """The value a record sorts by, or None (sorted last) when missing or of the wrong type."""
    if not isinstance(record, dict):
        return None
    value = record.get(key)
    if key in DATE_KEYS:
        return value if type(value) is str else None
    return value if type(value) in (int, float) and value == value else None


def _namespace(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    repo_id = record.get("id")
    if isinstance(repo_id, str) and "/" in repo_id:
        return repo_id.split("/", 1)[0]
    author = record.get("author")
    return author if isinstance(author, str) else None


class World:
    """The models, indexed once: orders per sort key, by id, per author (each built on first use)."""

    def __init__(self, models: Sequence[Any]) -> None:
        self.models = list(models)
        self._lock = threading.RLock()
        self._orders: dict[str, list[int]] = {}
        self._values: dict[str, list[Any]] = {}
        self._by_id: dict[str, int] | None = None
        self._by_author: dict[str, list[int]] | None = None
        self._lower_ids: list[str | None] | None = None
        self._children: Counter[str] | None = None
        self._private: frozenset[int] | None = None
        self._author_orders: OrderedDict[tuple[str, str], list[int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.models)

    def warm(self) -> World:
        """Build every index now rather than on the first request that needs it."""
        for key in SORT_KEYS:
            self.order(key)
        self.by_id()
        self.by_author()
        self.private()
        return self

    def object_id(self, index: int) -> Any:
        """The model's `_id`: its own if it has one, else a hex id increasing with its place in the world."""
        record = self.models[index]
        if isinstance(record, dict) and "_id" in record:
            return record["_id"]
        return f"{OBJECT_ID_BASE + index:024x}"

    def values(self, key: str) -> list[Any]:
        with self._lock:
            if key not in self._values:
                self._values[key] = [_sort_value(m, key) for m in self.models]
            return self._values[key]

    def _descending(self, indices: Iterable[int], key: str) -> list[int]:
        values = self.values(key)
        known = [i for i in indices if values[i] is not None]
        missing = [i for i in indices if values[i] is None]
        known.sort(key=values.__getitem__, reverse=True)  # stable: ties keep world order
        return known + missing

    def order(self, key: str) -> list[int]:
        """Model indices by `key`, descending, models without a usable value last."""
        with self._lock:
            if key not in self._orders:
                self._orders[key] = self._descending(range(len(self.models)), key)
            return self._orders[key]

    def by_id(self) -> dict[str, int]:
        with self._lock:
            if self._by_id is None:
                self._by_id = {}
                for i, m in enumerate(self.models):
                    if isinstance(m, dict) and isinstance(m.get("id"), str):
                        self._by_id.setdefault(m["id"], i)
            return self._by_id

    def by_author(self) -> dict[str, list[int]]:
        with self._lock:
            if self._by_author is None:
                self._by_author = {}
                for i, m in enumerate(self.models):
                    namespace = _namespace(m)
                    if namespace is not None:
                        self._by_author.setdefault(namespace, []).append(i)
            return self._by_author

    def lower_ids(self) -> list[str | None]:
        with self._lock:
            if self._lower_ids is None:
                self._lower_ids = [
                    m["id"].lower() if isinstance(m, dict) and isinstance(m.get("id"), str) else None
                    for m in self.models
                ]
            return self._lower_ids

    def private(self) -> frozenset[int]:
        """Indices of the private models (`"private": true`): listed only to a request with a token, as the Hub
        lists the private repos a token may read."""
        with self._lock:
            if self._private is None:
                self._private = frozenset(
                    i for i, m in enumerate(self.models) if isinstance(m, dict) and m.get("private") is True
                )
            return self._private

    def children(self) -> Counter[str]:
        """How many models name each id in a plain `base_model:<id>` tag."""
        with self._lock:
            if self._children is None:
                counts: Counter[str] = Counter()
                for m in self.models:
                    tags = m.get("tags") if isinstance(m, dict) else None
                    if isinstance(tags, list):
                        counts.update(
                            {t[11:] for t in tags if isinstance(t, str) and t.startswith("base_model:")
                             and t[11:].split(":", 1)[0] not in RELATIONS}
                        )
                self._children = counts
            return self._children

    def sequence(self, sort: str | None, author: str | None) -> Sequence[int]:
        """The indices a listing walks, in order, before search and filters."""
        if author is None:
            return self.order(sort) if sort else range(len(self.models))
        indices = self.by_author().get(author, [])
        if not sort or not indices:
            return indices
        with self._lock:
            cached = self._author_orders.get((author, sort))
            if cached is None:
                cached = self._author_orders[(author, sort)] = self._descending(indices, sort)
                if len(self._author_orders) > 256:
                    self._author_orders.popitem(last=False)
            return cached


class BadRequest(ValueError):
    """A listing request the Hub would answer with HTTP 400."""


@dataclass
class Listing:
    """The parsed query of one `GET /api/models` request."""

    pairs: list[tuple[str, str]]
    sort: str | None = None
    author: str | None = None
    search: str | None = None
    filters: list[str] = field(default_factory=list)
    pipeline_tag: str | None = None
    limit: int | None = None
    expand: list[str] | None = None
    full: bool = False
    cursor: dict | None = None

    @classmethod
    def parse(cls, pairs: list[tuple[str, str]]) -> Listing:
        listing = cls(pairs)
        for name, value in pairs:
            if name == "sort":
                listing.sort = value or None
            elif name == "author":
                listing.author = value
            elif name == "search":
                listing.search = value
            elif name == "filter":
                listing.filters.append(value)
            elif name == "pipeline_tag":
                listing.pipeline_tag = value
            elif name == "limit":
                try:
                    listing.limit = int(value)
                except ValueError:
                    raise BadRequest(f'"limit" must be a number, not {value!r}') from None
                if listing.limit < 0:
                    raise BadRequest('"limit" must be greater than or equal to 0')
            elif name == "expand":
                listing.expand = [*(listing.expand or []), value]
            elif name == "full":
                listing.full = value.lower() in ("1", "true")
            elif name == "cursor":
                listing.cursor = decode_cursor(value)
        if listing.sort is not None and listing.sort not in SORT_KEYS:
            raise BadRequest(f'"sort" must be one of {list(SORT_KEYS)}, not {listing.sort!r}')
        for name in listing.expand or ():
            if name not in EXPAND_PROPERTIES or name in SINGLE_MODEL_ONLY:
                allowed = sorted(EXPAND_PROPERTIES - SINGLE_MODEL_ONLY)
                raise BadRequest(f'"expand" must be one of {allowed}, not {name!r}')
        if listing.cursor is not None and listing.cursor.get("k") != listing.sort:
            raise BadRequest("the cursor belongs to another sort order")
        return listing

    @property
    def page(self) -> int:
        return self.cursor["pg"] if self.cursor else 1

    def matcher(self, world: World) -> Callable[[int], bool] | None:
        """A test on model indices for search, filter and pipeline_tag, or None when nothing is asked."""
        tests: list[Callable[[int], bool]] = []
        models = world.models
        if self.search:
            needle, lowered = self.search.lower(), world.lower_ids()
            tests.append(lambda i: (s := lowered[i]) is not None and needle in s)
        if self.filters:
            wanted = self.filters

            def has_tags(i: int) -> bool:
                m = models[i]
                tags = m.get("tags") if isinstance(m, dict) else None
                return isinstance(tags, list) and all(f in tags for f in wanted)

            tests.append(has_tags)
        if self.pipeline_tag:
            task = self.pipeline_tag
            tests.append(lambda i: isinstance(m := models[i], dict) and m.get("pipeline_tag") == task)
        if not tests:
            return None
        if len(tests) == 1:
            return tests[0]
        return lambda i: all(t(i) for t in tests)


def encode_cursor(state: dict) -> str:
    """The opaque cursor of a position: base64 of compact JSON."""
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(token: str) -> dict:
    try:
        state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        fields = ("p", "s", "n", "pg")
        if not (isinstance(state, dict) and all(type(state.get(k)) is int and state[k] >= 0 for k in fields)):
            raise ValueError
    except ValueError:
        raise BadRequest("Invalid cursor") from None
    return state


@dataclass
class RequestRecord:
    """One request as the stand-in saw it; the Authorization value itself is never kept."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]  # lower-case names; no Authorization, Proxy-Authorization or Cookie
    authorized: bool  # whether an Authorization header came with it
    page: int | None  # listing page number (1-based) for /api/models, from the cursor
    at: float  # time.monotonic() on arrival
    status: int | None = None  # what was answered; None for a dropped connection
    faults: list[str] = field(default_factory=list)

    def param(self, name: str) -> list[str]:
        """Every value of one query parameter."""
        return [v for k, v in self.query if k == name]


class StandinHub:
    """The stand-in Hub: `with StandinHub(models) as hub: HfApi(endpoint=hub.url).list_models()`."""

    def __init__(self, world: Sequence[Any] | World, *, page_size: int = DEFAULT_PAGE_SIZE,
                 faults: Faults | Iterable[Fault] | None = None, host: str = "127.0.0.1", port: int = 0,
                 public_url: str | None = None, quota: tuple[int, int] | None = None) -> None:
        self.world = world if isinstance(world, World) else World(world)
        self.page_size = page_size
        # The origin its next-page links name, as the Hub's name https://huggingface.co (and a mirror of it hands
        # them on unchanged); None: the stand-in's own address.
        self.public_url = public_url.rstrip("/") if public_url else None
        # The Hub's "api" quota: (q requests, w seconds) in fixed windows, every listing answer telling what is left
        # in `RateLimit` and `RateLimit-Policy`, and one past it answered 429; None: no quota and no such headers.
        self.quota = quota
        self._window = (0, 0)  # (the window's number since the stand-in was made, requests counted in it)
        self._quota_began = time.monotonic()
        self.faults = faults  # the setter wraps a plain iterable of Fault in a Faults
        self.host, self.port = host, port
        self.requests: list[RequestRecord] = []
        self.page_requests: Counter[int] = Counter()  # /api/models requests per listing page number
        self.pages_served = 0  # /api/models pages answered 200 with a well-formed body
        self.latency_injected = 0.0  # seconds slept for `latency` faults
        self.stall_injected = 0.0  # seconds slept for `read_timeout` faults
        self._token_digests: set[str] = set()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._address: tuple[str, int] | None = None  # kept after stop, so logs can still name the URL
        self._thread: threading.Thread | None = None

    # -- configuration ---------------------------------------------------------------------------------
    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: Faults | Iterable[Fault] | None) -> None:
        self._faults = faults if isinstance(faults, Faults) else Faults(*(faults or ()))

    def set_faults(self, *faults: Fault, seed: int = 0) -> Faults:
        """Replace the injected faults (counts start again) and return them."""
        self.faults = Faults(*faults, seed=seed)
        return self.faults

    def replace_world(self, world: Sequence[Any] | World) -> None:
        """Serve another world from now on (cursors of the old one become meaningless)."""
        self.world = world if isinstance(world, World) else World(world)

    # -- lifecycle -------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The endpoint to give `HfApi(endpoint=...)`: http://127.0.0.1:PORT (the last one, once stopped)."""
        if self._address is None:
            raise RuntimeError("the stand-in Hub has not been started")
        host, port = self._address
        return f"http://{host}:{port}"

    def start(self) -> StandinHub:
        if self._server is None:
            self._server = _Server((self.host, self.port), _Handler, self)
            self._address = self._server.server_address[:2]
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="standin-hub", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.close_connections()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> StandinHub:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- what was seen ---------------------------------------------------------------------------------
    @property
    def request_count(self) -> int:
        return len(self.requests)

    def listing_requests(self) -> list[RequestRecord]:
        """The logged `GET /api/models` requests."""
        return [r for r in self.requests if r.path == "/api/models"]

    def received_token(self, token: str) -> bool:
        """Whether some request carried `Authorization: Bearer <token>` (compared by sha256 only)."""
        return hashlib.sha256(token.encode()).hexdigest() in self._token_digests

    def reset_log(self) -> None:
        with self._lock:
            self.requests = []
            self.page_requests = Counter()
            self.pages_served = 0
            self.latency_injected = self.stall_injected = 0.0
            self._token_digests = set()

    def _spend(self) -> tuple[list[tuple[str, str]], bool]:
        """Count one listing request against the quota: the `RateLimit` and `RateLimit-Policy` headers of its answer
        (`r` the requests left after it, `t` the whole seconds to the window's end), and whether it is past the quota;
        no headers and never past it without a quota."""
        if self.quota is None:
            return [], False
        q, w = self.quota
        now = time.monotonic() - self._quota_began
        with self._lock:
            number = int(now // w)
            count = (self._window[1] if self._window[0] == number else 0) + 1
            self._window = (number, count)
        reset = math.ceil((number + 1) * w - now)
        headers = [
            ("RateLimit", f'"api";r={max(q - count, 0)};t={reset}'),
            ("RateLimit-Policy", f'"fixed window";"api";q={q};w={w}'),
        ]
        return headers, count > q

    def _record(self, handler: BaseHTTPRequestHandler, path: str, query: list[tuple[str, str]]) -> RequestRecord:
        headers = {k.lower(): v for k, v in handler.headers.items() if k.lower() not in SECRET_HEADERS}
        auth = handler.headers.get("Authorization")
        record = RequestRecord(handler.command, path, query, headers, auth is not None, None, time.monotonic())
        with self._lock:
            if auth is not None:
                token = auth[7:] if auth[:7].lower() == "bearer " else auth
                self._token_digests.add(hashlib.sha256(token.encode()).hexdigest())
            self.requests.append(record)
        return record


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type, hub: StandinHub) -> None:
        self.hub = hub
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, handler)

    def close_connections(self) -> None:
        """Close kept-alive connections so a stopped stand-in answers nothing more."""
        with self.connections_lock:
            for conn in list(self.connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    record: RequestRecord
    server_version = "standin-hub/1"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def send(self, status: int, body: bytes, *, content_type: str = "application/json; charset=utf-8",
             headers: Iterable[tuple[str, str]] = (), trickle: tuple[int, float] | None = None) -> None:
        """The whole response in one write (no Nagle stalls between header and body), logged first; with
        `trickle` (pieces, seconds), its body in pieces that far apart, the headers with the first."""
        self.record.status = status  # before the write: a client may read the log as soon as it has the answer
        reason = self.responses.get(status, ("",))[0]
        head = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers]
        if self.close_connection:
            head.append("Connection: close")
        start = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if trickle is None:
            self.wfile.write(start + body)
            return
        pieces, seconds = trickle
        size = -(-len(body) // pieces) or 1
        chunks = [body[i: i + size] for i in range(0, len(body), size)] or [b""]
        try:
            for n, chunk in enumerate(chunks):
                if n:
                    time.sleep(seconds)
                self.wfile.write(start + chunk if n == 0 else chunk)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting for the rest
            self.close_connection = True

    def send_json(self, status: int, value: Any, headers: Iterable[tuple[str, str]] = ()) -> None:
        self.send(status, json.dumps(value, separators=(",", ":"), default=str).encode(), headers=headers)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        hub = self.server.hub
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        query = parse_qsl(parts.query, keep_blank_values=True)
        self.record = hub._record(self, path, query)
        try:
            if path in ("/api/models", "/api/models/"):
                self.listing(hub, query)
            elif path.startswith("/api/models/"):
                self.model(hub, path.removeprefix("/api/models/"), query)
            elif path in ("/api/health", "/health"):
                self.send_json(200, {"status": "ok", "models": len(hub.world)})
            else:
                self.send_json(404, {"error": f"Sorry, we can't find the page you are looking for: {path}"})
        except BadRequest as error:
            self.send_json(400, {"error": str(error)})

    def listing(self, hub: StandinHub, query: list[tuple[str, str]]) -> None:
        tokens = [v for k, v in query if k == "cursor"]
        try:
            page_number: int | None = decode_cursor(tokens[-1])["pg"] if tokens else 1
        except BadRequest:
            page_number = None
        self.record.page = page_number
        quota, over = hub._spend()
        if over:  # answered before the page is built or any fault drawn, as the Hub's limiter stands before it
            with hub._lock:
                hub.page_requests[page_number or 0] += 1
            self.record.faults = ["quota"]
            self.send_json(429, RATE_LIMITED, quota)
            return
        plan = hub.faults.plan(page_number)
        self.record.faults = plan.kinds
        with hub._lock:
            hub.page_requests[page_number or 0] += 1
            hub.latency_injected += plan.latency
            hub.stall_injected += plan.stall
        replaced = plan.replacement is not None and plan.replacement.kind != "truncated_body"
        # The page is built while the latency runs, as a real server's latency includes building its answer.
        body, link = (b"", None) if replaced else self.page_of(hub, Listing.parse(query), plan)
        if plan.latency or plan.stall:
            time.sleep(max(0.0, plan.latency + plan.stall - (time.monotonic() - self.record.at)))
        if replaced:
            self.replace(plan.replacement)
            return
        headers = [("Link", f'<{link}>; rel="next"')] if link else []
        headers += quota
        if plan.replacement is not None:  # truncated: a valid start, cut off after its headers
            self.send(200, body[: len(body) // 2], headers=headers)
            return
        with hub._lock:
            hub.pages_served += 1
        self.send(200, body, headers=headers, trickle=plan.trickle)

    def replace(self, fault: Fault) -> None:
        if fault.kind == "dropped_connection":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
        elif fault.kind == "rate_limit":
            headers = [
                ("RateLimit", f'"api";r=0;t={fault.reset}'),
                ("RateLimit-Policy", f'"fixed window";"api";q={fault.quota};w={fault.window}'),
            ] if fault.headers else []
            self.send_json(429, RATE_LIMITED, headers)
        elif fault.kind == "server_error":
            self.send_json(fault.status, {"error": self.responses.get(fault.status, ("Server error",))[0]})
        elif fault.kind == "malformed_json":
            self.send(200, MALFORMED)
        else:  # html_page
            self.send(200, HTML_ERROR, content_type="text/html; charset=utf-8")

    def page_of(self, hub: StandinHub, listing: Listing, plan: Plan) -> tuple[bytes, str | None]:
        """The page's JSON body and its next link."""
        world = hub.world
        sequence = world.sequence(listing.sort, listing.author)
        cursor = listing.cursor or {"p": 0, "s": 0, "n": 0, "pg": 1}
        start, served = cursor["p"], cursor["n"]
        # As the Hub's, `limit` is the size of each page (at most the stand-in's own), not a total: the next-page
        # link goes on past it, and a client stops once it has what it asked for.
        take = hub.page_size if listing.limit is None else min(hub.page_size, listing.limit)
        matches = listing.matcher(world)
        if not self.record.authorized and (hidden := world.private()):
            asked = matches
            matches = (lambda i: i not in hidden) if asked is None else (lambda i: i not in hidden and asked(i))
        indices, end = _scan(sequence, start, take, matches)
        if any(f.kind == "duplicate_ids" for f in plan.amendments):
            count = next(f.count for f in plan.amendments if f.kind == "duplicate_ids")
            previous, _ = _scan(sequence, cursor["s"], hub.page_size, matches)
            indices = previous[max(0, len(previous) - count):] + indices
        more = end < len(sequence) and take > 0
        # The Hub names itself in its next-page links (https://huggingface.co), which a mirror hands on unchanged.
        named = hub.public_url or f"http://{self.server.server_address[0]}:{self.server.server_address[1]}"
        base = f"{named}/api/models"
        pairs = [(k, v) for k, v in listing.pairs if k != "cursor"]
        link = None
        if more:
            state = {"k": listing.sort, "p": end, "s": start, "n": served + len(indices), "pg": cursor["pg"] + 1}
            link = f"{base}?{urlencode([*pairs, ('cursor', encode_cursor(state))])}"
        for fault in plan.amendments:
            if fault.kind == "looping_link":
                link = f"{base}?{urlencode(listing.pairs)}" if listing.pairs else base
            elif fault.kind == "foreign_link":
                link = fault.host + (link or base).removeprefix(base.removesuffix("/api/models"))
        project = _projector(world, listing)
        body = json.dumps([project(i) for i in indices], separators=(",", ":"), check_circular=False, default=str)
        return body.encode(), link

    def model(self, hub: StandinHub, repo: str, query: list[tuple[str, str]]) -> None:
        repo_id = repo.split("/revision/", 1)[0].strip("/")
        index = hub.world.by_id().get(repo_id)
        if index is None:
            self.send_json(404, {"error": "Repository not found"}, [("X-Error-Code", "RepoNotFound")])
            return
        expand = [v for k, v in query if k == "expand"]
        for name in expand:
            if name not in EXPAND_PROPERTIES:
                raise BadRequest(f'"expand" must be one of {sorted(EXPAND_PROPERTIES)}, not {name!r}')
        record = hub.world.models[index]
        body = {"_id": hub.world.object_id(index)}
        if expand:
            body["id"] = repo_id
            body.update({k: record[k] for k in expand if k in record})
        else:
            body.update(record)
        if "baseModels" in expand and "baseModels" not in record:
            bases = base_models(record.get("tags"))
            if bases is not None:
                body["baseModels"] = bases
        if "childrenModelCount" in expand and "childrenModelCount" not in record:
            body["childrenModelCount"] = hub.world.children()[repo_id]
        self.send_json(200, body)


def _scan(sequence: Sequence[int], start: int, take: int,
          matches: Callable[[int], bool] | None) -> tuple[list[int], int]:
    """Up to `take` matching indices from position `start`, and the position after the last one taken."""
    if matches is None:
        indices = list(sequence[start:start + take])
        return indices, start + len(indices)
    indices: list[int] = []
    position, stop = start, len(sequence)
    while position < stop and len(indices) < take:
        if matches(sequence[position]):
            indices.append(sequence[position])
        position += 1
    return indices, position


def _projector(world: World, listing: Listing) -> Callable[[int], Any]:
    """A function from model index to what the listing returns for it: `_id`, `id` and the fields asked."""
    models, object_id = world.models, world.object_id
    if listing.full:
        def full(i: int) -> Any:
            m = models[i]
            return {"_id": object_id(i), **m} if isinstance(m, dict) else m

        return full
    wanted = tuple(dict.fromkeys(listing.expand)) if listing.expand is not None else DEFAULT_FIELDS
    keys = ("id", *wanted)

    def projected(i: int) -> Any:
        m = models[i]
        if not isinstance(m, dict):
            return m
        out = {"_id": m["_id"] if "_id" in m else f"{OBJECT_ID_BASE + i:024x}"}
        for k in keys:
            if k in m:
                out[k] = m[k]
        return out

    return projected


def base_models(tags: Any) -> dict | None:
    """The `baseModels` property derived from `base_model:` tags, as `model_info` returns it."""
    if not isinstance(tags, list):
        return None
    bases: list[str] = []
    relation = None
    for tag in tags:
        if not isinstance(tag, str) or not tag.startswith("base_model:"):
            continue
        rest = tag.removeprefix("base_model:")
        head, _, tail = rest.partition(":")
        if head in RELATIONS and tail:
            relation = relation or head
            rest = tail
        if rest not in bases:
            bases.append(rest)
    if not bases:
        return None
    return {"relation": relation or "finetune", "models": [{"id": b} for b in bases]}


def main(argv: list[str] | None = None) -> None:
    """Serve a JSONL world until SIGTERM; the first stdout line is the URL."""
    parser = argparse.ArgumentParser(prog="python -m flows.standin_hub", description=main.__doc__)
    parser.add_argument("--world", required=True, type=Path, help="JSONL file, one model per line")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every listing page")
    parser.add_argument("--fault", action="append", default=[], metavar="JSON",
                        help='a fault as JSON, e.g. \'{"kind": "rate_limit", "times": 2, "pages": [3]}\' (repeatable)')
    parser.add_argument("--seed", type=int, default=0, help="seed for faults with a probability")
    parser.add_argument("--warm", action="store_true", help="build every index before serving")
    parser.add_argument("--quota", metavar="Q/W", help="the Hub's quota: Q listing requests per W-second window")
    args = parser.parse_args(argv)
    try:
        quota = tuple(int(n) for n in args.quota.split("/")) if args.quota else None
        if quota is not None and (len(quota) != 2 or min(quota) < 1):
            raise ValueError
    except ValueError:
        parser.error(f"--quota: give Q/W, two whole numbers above 0, not {args.quota!r}")
    try:
        faults = [Fault(**json.loads(spec)) for spec in args.fault]
    except (TypeError, ValueError) as error:
        parser.error(f"--fault: {error}")
    if args.latency > 0:
        faults.append(latency(args.latency))
    world = World(load_world(args.world))
    if args.warm:
        world.warm()
    gc.freeze()  # the world lives as long as the process: keep full collections from walking it
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    hub = StandinHub(world, page_size=args.page_size, faults=Faults(*faults, seed=args.seed), host=args.host,
                     port=args.port, quota=quota)
    with hub:
        print(hub.url, flush=True)
        while not stopped.wait(0.5):
            pass
        print(f"served {hub.request_count} requests, {hub.pages_served} pages", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
