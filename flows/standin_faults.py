"""Faults the stand-in Hub injects into its model listing: deterministic, seedable, swappable at runtime."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

FaultKind = Literal[
    "latency",  # sleep `seconds` before answering (counted in `StandinHub.latency_injected`)
    "read_timeout",  # sleep `seconds` (longer than the client's timeout), then answer normally
    "slow_body",  # the answer's body in `count` pieces `seconds` apart: each read quick, the whole slow
    "rate_limit",  # HTTP 429, with or without RateLimit / RateLimit-Policy headers
    "server_error",  # HTTP `status` (500, 502, 503 or 504)
    "malformed_json",  # HTTP 200 whose body is not JSON
    "truncated_body",  # HTTP 200 whose JSON body is cut off (Content-Length matches what is sent)
    "html_page",  # HTTP 200, text/html error page
    "dropped_connection",  # the socket is closed without any response
    "foreign_link",  # the next-page link points to another host
    "looping_link",  # the next-page link points back to the page just served
    "duplicate_ids",  # the page repeats `count` models from the end of the previous page
]

DELAYS = frozenset({"latency", "read_timeout", "slow_body"})
REPLACEMENTS = frozenset(
    {"rate_limit", "server_error", "malformed_json", "truncated_body", "html_page", "dropped_connection"}
)
AMENDMENTS = frozenset({"foreign_link", "looping_link", "duplicate_ids"})
FAULT_KINDS = DELAYS | REPLACEMENTS | AMENDMENTS


@dataclass(frozen=True)
class Fault:
    """One fault: what happens, on which listing pages, how many times, and with what chance."""

    kind: FaultKind
    pages: frozenset[int] | None = None  # 1-based page numbers of a listing; None: every page
    times: int | None = None  # requests it may hit in all (a burst of N 429s is times=N); None: unbounded
    probability: float = 1.0  # chance per eligible request, drawn from the seeded generator
    seconds: float = 0.0  # latency, read_timeout
    status: int = 503  # server_error
    reset: int = 0  # rate_limit: `t=` seconds to the window reset (the client sleeps t + 1)
    quota: int = 500  # rate_limit: `q=`
    window: int = 300  # rate_limit: `w=`
    headers: bool = True  # rate_limit: send the RateLimit headers (without them the client backs off 1, 2, 4 s)
    host: str = "http://hub.invalid"  # foreign_link: scheme://host the next link points to
    count: int = 5  # duplicate_ids: models of the previous page repeated at the start of this one; slow_body: pieces

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if self.pages is not None and not isinstance(self.pages, frozenset):
            object.__setattr__(self, "pages", frozenset(self.pages))
        if self.kind == "server_error" and not 500 <= self.status <= 599:
            raise ValueError(f"server_error needs a 5xx status, not {self.status}")


def _when(pages: Iterable[int] | int | None) -> frozenset[int] | None:
    if pages is None:
        return None
    return frozenset([pages] if isinstance(pages, int) else pages)


def latency(seconds: float, *, pages: Iterable[int] | int | None = None, times: int | None = None,
            probability: float = 1.0) -> Fault:
    """A fixed delay before each matching page (every page by default)."""
    return Fault("latency", _when(pages), times, probability, seconds=seconds)


def read_timeout(seconds: float, times: int | None = 1, *, pages: Iterable[int] | int | None = None,
                 probability: float = 1.0) -> Fault:
    """A stall of `seconds` before answering, longer than the client's read timeout."""
    return Fault("read_timeout", _when(pages), times, probability, seconds=seconds)


def slow_body(pieces: int, seconds: float, times: int | None = 1, *, pages: Iterable[int] | int | None = None,
              probability: float = 1.0) -> Fault:
    """A body sent in `pieces` pieces `seconds` apart: no read waits long, the whole takes (pieces - 1) × seconds."""
    return Fault("slow_body", _when(pages), times, probability, seconds=seconds, count=pieces)


def rate_limit(times: int | None = 1, *, reset: int = 0, quota: int = 500, window: int = 300,
               headers: bool = True, pages: Iterable[int] | int | None = None,
               probability: float = 1.0) -> Fault:
    """A burst of `times` consecutive HTTP 429s, with `RateLimit: "api";r=0;t=<reset>` unless headers=False."""
    return Fault("rate_limit", _when(pages), times, probability, reset=reset, quota=quota, window=window,
                 headers=headers)


def server_error(status: int = 503, times: int | None = 1, *, pages: Iterable[int] | int | None = None,
                 probability: float = 1.0) -> Fault:
    """`times` responses with a 5xx status."""
    return Fault("server_error", _when(pages), times, probability, status=status)


def malformed_json(times: int | None = 1, *, pages: Iterable[int] | int | None = None,
                   probability: float = 1.0) -> Fault:
    """`times` HTTP 200 responses whose body is not JSON."""
    return Fault("malformed_json", _when(pages), times, probability)


def truncated_body(times: int | None = 1, *, pages: Iterable[int] | int | None = None,
                   probability: float = 1.0) -> Fault:
    """`times` HTTP 200 responses carrying only the first half of the page's JSON."""
    return Fault("truncated_body", _when(pages), times, probability)


def html_page(times: int | None = 1, *, pages: Iterable[int] | int | None = None,
              probability: float = 1.0) -> Fault:
    """`times` HTTP 200 responses that are an HTML error page (content-type text/html)."""
    return Fault("html_page", _when(pages), times, probability)


def dropped_connection(times: int | None = 1, *, pages: Iterable[int] | int | None = None,
                       probability: float = 1.0) -> Fault:
    """`times` requests whose connection is closed without a response."""
    return Fault("dropped_connection", _when(pages), times, probability)


def foreign_link(host: str = "http://hub.invalid", times: int | None = 1, *,
                 pages: Iterable[int] | int | None = None, probability: float = 1.0) -> Fault:
    """`times` pages whose next link points to `host` (same path and query)."""
    return Fault("foreign_link", _when(pages), times, probability, host=host.rstrip("/"))


def looping_link(times: int | None = 1, *, pages: Iterable[int] | int | None = None,
                 probability: float = 1.0) -> Fault:
    """`times` pages whose next link is the URL of the page just served."""
    return Fault("looping_link", _when(pages), times, probability)


def duplicate_ids(count: int = 5, times: int | None = 1, *, pages: Iterable[int] | int | None = None,
                  probability: float = 1.0) -> Fault:
    """`times` pages (from page 2 on) that start with the last `count` models of the previous page again."""
    return Fault("duplicate_ids", _when(pages), times, probability, count=count)


@dataclass
class Plan:
    """What one request gets: delays, at most one replacement response, and amendments to a normal page."""

    latency: float = 0.0
    stall: float = 0.0
    trickle: tuple[int, float] | None = None  # slow_body: (pieces, seconds apart)
    replacement: Fault | None = None
    amendments: list[Fault] = field(default_factory=list)

    @property
    def kinds(self) -> list[str]:
        """The kinds of fault that fired, in the order they apply."""
        fired = ["latency"] if self.latency else []
        fired += ["read_timeout"] if self.stall else []
        fired += ["slow_body"] if self.trickle else []
        fired += [self.replacement.kind] if self.replacement else []
        return fired + [f.kind for f in self.amendments]


class Faults:
    """A set of faults with their occurrence counts and a seeded generator; thread-safe."""

    def __init__(self, *faults: Fault, seed: int = 0) -> None:
        self.faults = tuple(faults)
        self.seed = seed
        self.fired: Counter[str] = Counter()  # occurrences per fault kind
        self._hits = [0] * len(self.faults)
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Faults({', '.join(map(repr, self.faults))}, seed={self.seed})"

    def plan(self, page: int | None) -> Plan:
        """Decide which faults hit a request for listing page `page` (None: unknown page), and count them."""
        plan = Plan()
        with self._lock:
            for n, fault in enumerate(self.faults):
                if fault.kind in REPLACEMENTS and plan.replacement is not None:
                    continue
                if fault.pages is not None and page not in fault.pages:
                    continue
                if fault.times is not None and self._hits[n] >= fault.times:
                    continue
                if fault.kind == "duplicate_ids" and (page is None or page < 2):
                    continue
                if fault.probability < 1.0 and self._random.random() >= fault.probability:
                    continue
                self._hits[n] += 1
                self.fired[fault.kind] += 1
                if fault.kind == "latency":
                    plan.latency += fault.seconds
                elif fault.kind == "read_timeout":
                    plan.stall += fault.seconds
                elif fault.kind == "slow_body":
                    plan.trickle = (max(fault.count, 1), fault.seconds)
                elif fault.kind in REPLACEMENTS:
                    plan.replacement = fault
                else:
                    plan.amendments.append(fault)
        return plan
