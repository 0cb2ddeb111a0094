"""The Hub's listing API through the real `huggingface_hub` HTTP stack, one page per request."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson
from huggingface_hub import constants, set_client_factory
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
from huggingface_hub.utils import build_hf_headers, hf_raise_for_status, http_backoff
from huggingface_hub.utils import httpx as hx  # httpx2 in huggingface_hub 2.x
from huggingface_hub.utils._http import default_client_factory

from flows.scope import Listing

DEFAULT_ENDPOINT = "https://huggingface.co"
REQUEST_TIMEOUT = 30.0  # the client has none by default (stack notes 1.3)
BODY_RETRIES = 3  # a malformed or truncated page is fetched again this many times
# The client's own schedule: 5 retries waiting 1, 2, 4, 8, 8 s, or what a 429's RateLimit header says.
BACKOFF = {"max_retries": 5, "base_wait_time": 1.0, "max_wait_time": 8.0}


class HubError(RuntimeError):
    """The Hub could not be crawled; the message names the endpoint and what went wrong."""


@dataclass
class Page:
    """One listing page: its items, the URL that fetched it and the next page's URL."""

    items: list[dict]
    url: str
    next_url: str | None


class _Counter:
    """Requests sent through the shared client (retries included), for the run's provenance."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def __call__(self, _request: hx.Request) -> None:
        with self._lock:
            self.value += 1


REQUESTS = _Counter()
_configured: tuple[float] | None = None


def configure_client(timeout: float = REQUEST_TIMEOUT) -> None:
    """Install a client factory that puts a timeout on every request and counts them."""
    global _configured
    if _configured == (timeout,):
        return

    def force_timeout(request: hx.Request) -> None:
        request.extensions["timeout"] = hx.Timeout(timeout).as_dict()

    def factory() -> hx.Client:
        client = default_client_factory()
        client.event_hooks["request"].extend([force_timeout, REQUESTS])
        return client

    set_client_factory(factory)
    _configured = (timeout,)


def resolve_endpoint(endpoint: str | None) -> str:
    """The endpoint to crawl: the argument, else `HF_ENDPOINT`, else the real Hub."""
    chosen = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    parts = urlsplit(chosen)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise HubError(f"endpoint {chosen!r} is not an http(s) URL")
    return chosen


def check_reachable(endpoint: str, *, attempts: int = 4, timeout: float = 5.0) -> None:
    """Fail fast, with one clear line, when nothing answers at the endpoint's host and port."""
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    wait = 1.0
    for attempt in range(attempts):
        try:
            with socket.create_connection((parts.hostname, port), timeout=timeout):
                return
        except OSError as error:
            reason = error.strerror or type(error).__name__
            if attempt + 1 == attempts:
                raise HubError(f"cannot reach {endpoint}: {reason} (tried {attempts} times)") from None
            time.sleep(wait)
            wait *= 2


def request_headers(token: str | None) -> dict[str, str]:
    """Hub headers; the token (from `HF_TOKEN` when not given) is sent only if set."""
    from warehouse.provenance import code_version

    token = token or os.environ.get("HF_TOKEN") or None
    return build_hf_headers(
        token=token if token else False, library_name="multipolar", library_version=code_version()[:12]
    )


def pages(endpoint: str, listing: Listing, headers: dict[str, str], start_url: str | None = None) -> Iterator[Page]:
    """Pages of one listing, following `Link: rel="next"`, from `start_url` when resuming."""
    first = f"{endpoint}/api/models"
    url, params = (start_url, None) if start_url else (first, listing.params())
    seen = set()
    while url is not None:
        full_url = url if params is None else _with_params(url, params)
        if full_url in seen:
            raise HubError(f"{endpoint}: the listing's next-page link loops back to {_redact(full_url)}")
        seen.add(full_url)
        _check_same_origin(endpoint, url)
        items, next_url = _fetch(endpoint, url, params, headers)
        if next_url is not None:  # refuse before the page is yielded, so the link is never checkpointed
            _check_same_origin(endpoint, next_url)
        yield Page(items, full_url, next_url)
        url, params = next_url, None


def _fetch(endpoint: str, url: str, params: list | None, headers: dict[str, str]) -> tuple[list[dict], str | None]:
    """One page, retried on malformed bodies; transport retries and 429 waits are the client's."""
    last = "no response"
    for _attempt in range(BODY_RETRIES + 1):
        try:
            response = http_backoff("GET", url, params=params, headers=headers, **BACKOFF)
            hf_raise_for_status(response)
        except OfflineModeIsEnabled:
            raise HubError(f"{endpoint}: offline mode is on (HF_HUB_OFFLINE); unset it to crawl") from None
        except HfHubHTTPError as error:
            status = error.response.status_code if error.response is not None else "?"
            raise HubError(f"{endpoint} answered HTTP {status} after retries: {_first_line(error)}") from None
        except hx.HTTPError as error:
            raise HubError(f"cannot reach {endpoint}: {type(error).__name__}: {_first_line(error)}") from None
        try:
            items = parse_body(response.content)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            kind = response.headers.get("content-type", "?")
            reason = getattr(error, "msg", str(error))
            last = f"HTTP {response.status_code} with an unreadable body ({kind}: {reason})"
            continue
        if not isinstance(items, list):
            last = f"HTTP {response.status_code} with a body that is not a list of models"
            continue
        return items, response.links.get("next", {}).get("url")
    raise HubError(f"{endpoint}: {last}, {BODY_RETRIES + 1} times in a row")


def parse_body(body: bytes) -> object:
    """A page's JSON: orjson's parser, about twice as fast; the standard library's for what orjson refuses
    but Python's JSON reads (NaN, Infinity, integers beyond 64 bits), which `flows.rows` then blanks."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


def _check_same_origin(endpoint: str, url: str) -> None:
    a, b = urlsplit(endpoint), urlsplit(url)
    if (a.scheme, a.netloc) != (b.scheme, b.netloc):
        raise HubError(f"{endpoint}: the next-page link points to another host ({b.scheme}://{b.netloc}); refused")


def _with_params(url: str, params: list[tuple[str, str]]) -> str:
    return str(hx.URL(url, params=params))


def _redact(url: str) -> str:
    return url if len(url) < 200 else url[:200] + "…"


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def offline_mode() -> bool:
    """Whether huggingface_hub refuses to make requests."""
    return constants.is_offline_mode()
