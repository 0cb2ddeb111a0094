"""The Hub's listing API through the real `huggingface_hub` HTTP stack, one page per request."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import socket
import ssl
import string
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson
from huggingface_hub import set_client_factory
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
from huggingface_hub.utils import build_hf_headers, hf_raise_for_status, http_backoff, parse_ratelimit_headers
from huggingface_hub.utils import httpx as hx  # httpx2 in huggingface_hub 2.x
from huggingface_hub.utils._http import default_client_factory

from flows.scope import Listing

DEFAULT_ENDPOINT = "https://huggingface.co"
REQUEST_TIMEOUT = 30.0  # the client has none by default (stack notes 1.3)
# The longest wait a 429 may ask for: the Hub's windows are 5 minutes; a longer one (a proxy's, a misconfigured
# Hub's) stops the crawl in one line rather than sleeping silently, to be resumed by a later run.
MAX_RATE_LIMIT_WAIT = 900.0
TOLD_RATE_LIMIT_WAIT = 30.0  # a wait at least this long is told as it begins
BODY_RETRIES = 3  # a malformed or truncated page is fetched again this many times
# The client's own schedule: 5 retries waiting 1, 2, 4, 8, 8 s, or what a 429's RateLimit header says.
BACKOFF = {"max_retries": 5, "base_wait_time": 1.0, "max_wait_time": 8.0}


class HubError(RuntimeError):
    """The Hub could not be crawled; the message names the endpoint and what went wrong, and `status` the HTTP
    status the Hub answered with, when it answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


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
        request.extensions["trace"] = _trace
        request.extensions["multipolar_sent"] = time.monotonic()

    def whole_answer_in_time(response: hx.Response) -> None:
        # httpx's timeout bounds each read alone: a server that sends a byte every few seconds would hold a
        # request for ever. The body is read through `_Deadline`, which ends it `timeout` s after the request.
        began = response.request.extensions.get("multipolar_sent", time.monotonic())
        response.stream = _Deadline(response.stream, response.request, began + timeout, timeout)

    def factory() -> hx.Client:
        client = default_client_factory()
        client.event_hooks["request"].extend([force_timeout, REQUESTS])
        client.event_hooks["response"].extend([whole_answer_in_time, rate_limit_wait])
        return client

    set_client_factory(factory)
    _configured = (timeout,)


# The statuses the client retries, sleeping as a `Retry-After` header says on any of them.
RETRIED_STATUSES = (408, 429, 500, 502, 503, 504)


def rate_limit_wait(response: hx.Response) -> None:
    """The wait a retried answer asks for, as the client reads it (a 429's `RateLimit` when no request remains,
    else `Retry-After`): told when long, and a HubError when longer than `MAX_RATE_LIMIT_WAIT`, before the
    client sleeps through it."""
    if response.status_code not in RETRIED_STATUSES:
        return
    limit = parse_ratelimit_headers(response.headers) if response.status_code == 429 else None
    retry_after = response.headers.get("retry-after", "").strip()
    if limit is not None and limit.remaining == 0:
        wait = float(limit.reset_in_seconds)
    elif retry_after.isdigit():
        wait = float(retry_after)
    else:
        return
    parts = urlsplit(str(response.request.url))
    origin = f"{parts.scheme}://{parts.netloc}"
    status = f"HTTP {response.status_code}"
    if wait > MAX_RATE_LIMIT_WAIT:
        response.close()
        raise HubError(
            f"{origin} answered {status} and asks to wait {wait:,.0f} s, more than the {MAX_RATE_LIMIT_WAIT:,.0f} s "
            "a crawl waits: run again later, which resumes the crawl from its last page"
        )
    if wait >= TOLD_RATE_LIMIT_WAIT:
        logging.getLogger("multipolar.crawl").warning("%s answered %s: waiting %.0f s as it asks", origin, status, wait)


class _Deadline(hx.SyncByteStream):
    """A response body read no later than `deadline`: past it, the next piece raises `ReadTimeout`, which the
    client retries as any timeout."""

    def __init__(self, stream: hx.SyncByteStream, request: hx.Request, deadline: float, timeout: float) -> None:
        self.stream, self.request, self.deadline, self.timeout = stream, request, deadline, timeout

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.stream:
            if time.monotonic() > self.deadline:
                raise hx.ReadTimeout(f"no whole answer within {self.timeout:g} s", request=self.request)
            yield chunk

    def close(self) -> None:
        self.stream.close()


def resolve_endpoint(endpoint: str | None) -> str:
    """The endpoint to crawl: the argument, else `HF_ENDPOINT`, else the real Hub."""
    chosen = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    # Shown only when it carries no credentials nor query, which may hold a token.
    shown = repr(chosen) if not any(c in chosen for c in "@?#") else "(not shown: it carries credentials or a query)"
    if chosen != chosen.strip() or any(c.isspace() or not c.isprintable() for c in chosen):
        raise HubError(f"endpoint {shown} holds spaces or control characters")
    try:
        parts = urlsplit(chosen)
        parts.port  # noqa: B018  a port out of range raises here
    except ValueError as error:
        raise HubError(f"endpoint {shown} is not a URL that can be read ({error})") from None
    if "@" in chosen:
        # The URL itself is not repeated: it would be printed, and kept in Prefect's database and checkpoints. An
        # `@` anywhere counts, as a malformed URL (`https:/user:token@host`) hides its credentials from urlsplit.
        raise HubError("the endpoint carries credentials (user:password@host): give a Hub token in HF_TOKEN instead")
    if parts.query or parts.fragment:
        # Nor this one: a query may carry a token.
        raise HubError(
            "the endpoint carries a query or fragment (?… or #…): give scheme://host[:port][/path], and a Hub token "
            "in HF_TOKEN"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HubError(f"endpoint {shown} is not an http(s) URL with a host")
    return chosen


def check_reachable(endpoint: str, *, attempts: int = 4, timeout: float = 5.0) -> None:
    """Fail fast, with one clear line, when nothing answers at the endpoint's host and port, or, for https,
    when it does not speak TLS with a certificate the client trusts (a mistake no retry mends). Through a proxy
    (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` not bypassed by `NO_PROXY`), as the client goes, nothing is checked:
    the host may be one only the proxy resolves."""
    parts = urlsplit(endpoint)
    if proxied(endpoint):
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    wait = 1.0
    for attempt in range(attempts):
        try:
            with socket.create_connection((parts.hostname, port), timeout=timeout) as connection:
                if parts.scheme == "https":
                    _check_tls(endpoint, connection, parts.hostname or "")
                return
        except OSError as error:
            reason = error.strerror or type(error).__name__
            if attempt + 1 == attempts:
                tried = "once" if attempts == 1 else f"{attempts} times"
                raise HubError(f"cannot reach {endpoint}: {reason} (tried {tried})") from None
            time.sleep(wait)
            wait *= 2


def token_safe_to(endpoint: str) -> bool:
    """Whether a token may be sent to `endpoint`: over https, or over http to this machine's loopback when no
    proxy of the environment carries it (a proxy may be another machine)."""
    parts = urlsplit(endpoint)
    if parts.scheme.lower() == "https":
        return True
    proxy = proxied(endpoint)
    return loopback(parts.hostname) and (not proxy or loopback(urlsplit(proxy).hostname))


def loopback(host: str | None) -> bool:
    host = (host or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def proxied(endpoint: str) -> str | None:
    """The proxy of the environment through which the client reaches `endpoint`, if any: read by the client's own
    rules (httpx2's), whose `NO_PROXY` differs from urllib's (`.hub.corp` does not cover `hub.corp` itself)."""
    import httpx2
    from httpx2._utils import URLPattern, get_environment_proxies

    try:
        url = httpx2.URL(endpoint)
    except httpx2.InvalidURL:
        return None
    # As the client mounts them: the most specific pattern first.
    for pattern, proxy in sorted((URLPattern(k), v) for k, v in get_environment_proxies().items()):
        if pattern.matches(url):
            return proxy
    return None


def _check_tls(endpoint: str, connection: socket.socket, host: str) -> None:
    """A TLS handshake over `connection` with the certificates the client trusts, or a HubError saying why not."""
    import certifi

    context = ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE") or certifi.where())
    try:
        with context.wrap_socket(connection, server_hostname=host):
            return
    except ssl.SSLCertVerificationError as error:
        raise HubError(f"{endpoint}: its certificate is not trusted ({error.verify_message})") from None
    except ssl.SSLError as error:
        reason = error.reason or type(error).__name__
        raise HubError(f"{endpoint}: no TLS handshake ({reason}); is it an http:// endpoint?") from None


def request_headers(token: str | None, endpoint: str | None = None) -> dict[str, str]:
    """Hub headers; the token (from `HF_TOKEN` when not given) is sent only if set, and to `endpoint` only over
    TLS or to this machine: a plain `http://` endpoint elsewhere would carry it readable by anyone on the way."""
    from warehouse.provenance import short_code_version

    token = token or os.environ.get("HF_TOKEN") or None
    if token and endpoint and not token_safe_to(endpoint):
        logging.getLogger("multipolar.crawl").warning(
            "HF_TOKEN is not sent to %s: a plain http:// endpoint on another machine would carry it unencrypted; "
            "the crawl goes on without it (give an https:// endpoint to send it)",
            endpoint,
        )
        token = None
    return build_hf_headers(
        token=token if token else False, library_name="multipolar", library_version=short_code_version()
    )


def pages(
    endpoint: str,
    listing: Listing,
    headers: dict[str, str],
    start_url: str | None = None,
    *,
    ahead: bool = False,
) -> Iterator[Page]:
    """Pages of one listing, following `Link: rel="next"`, from `start_url` when resuming.

    With `ahead`, the next page is requested as soon as this page's answer names it, while this page's
    body is parsed and handed on: the requests follow one another with none of the client's work
    between them. A body that does not parse is fetched again once the request ahead has ended, and
    that request's answer is dropped, so one request is in flight at a time. Without it, as for a
    listing with a limit, no page is requested before the one before it has been taken.
    """
    first = f"{endpoint}/api/models"
    url, params = (start_url, None) if start_url else (first, listing.params())
    seen = set()
    waiting: _Request | None = None
    while url is not None:
        full_url = url if params is None else _with_params(url, params)
        if full_url in seen:
            raise HubError(f"{endpoint}: the listing's next-page link loops back to {_redact(full_url)}")
        seen.add(full_url)
        _check_same_origin(endpoint, url)
        response = waiting.result() if waiting is not None else _request(endpoint, url, params, headers)
        waiting = None
        for attempt in range(BODY_RETRIES + 1):
            next_url = response.links.get("next", {}).get("url")
            if next_url is not None:  # refuse before the page is yielded, so the link is never checkpointed
                next_url = _on_endpoint(endpoint, next_url)
                _check_same_origin(endpoint, next_url)
                if ahead and next_url not in seen:
                    waiting = _Request(endpoint, next_url, headers)
            try:
                items = _items(response)
                break
            except _Unreadable as error:
                if waiting is not None:
                    waiting.drop()
                    waiting = None
                if attempt == BODY_RETRIES:
                    raise HubError(f"{endpoint}: {error}, {BODY_RETRIES + 1} times in a row") from None
                response = _request(endpoint, url, params, headers)
        yield Page(items, full_url, next_url)
        url, params = next_url, None


_sending = threading.local()  # the event a request sent on a thread of its own sets once it is on the wire


def _trace(name: str, _info: dict) -> None:
    """The client's trace of each request: says when a request ahead awaits its answer."""
    if name == "http11.receive_response_headers.started" and (sent := getattr(_sending, "sent", None)):
        sent.set()


class _Request:
    """One page's request, sent on a thread of its own: `result()` is its response or raises its error.

    It returns once the request is sent (or has failed): the caller's next work, parsing a page, holds
    the interpreter for milliseconds, and would otherwise delay the sending by as much.
    """

    SEND_WAIT = 1.0  # seconds to wait for the request to be sent, a new connection included

    def __init__(self, endpoint: str, url: str, headers: dict[str, str]) -> None:
        self._response: hx.Response | None = None
        self._error: BaseException | None = None
        self._sent = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(endpoint, url, headers), daemon=True)
        self._thread.start()
        self._sent.wait(self.SEND_WAIT)

    def _run(self, endpoint: str, url: str, headers: dict[str, str]) -> None:
        _sending.sent = self._sent
        try:
            self._response = _request(endpoint, url, None, headers)
        except BaseException as error:  # raised where the page is taken
            self._error = error
        finally:
            self._sent.set()

    def result(self) -> hx.Response:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._response is not None
        return self._response

    def drop(self) -> None:
        """Wait for the request to end, and forget its answer."""
        self._thread.join()


class _Unreadable(ValueError):
    """A page's body is not a list of models."""


def _request(endpoint: str, url: str, params: list | None, headers: dict[str, str]) -> hx.Response:
    """One page's response; transport retries and 429 waits are the client's."""
    try:
        response = http_backoff("GET", url, params=params, headers=headers, **BACKOFF)
        hf_raise_for_status(response)
    except OfflineModeIsEnabled:
        raise HubError(f"{endpoint}: offline mode is on (HF_HUB_OFFLINE); unset it to crawl") from None
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        retried = " after retries" if status in RETRIED_STATUSES else ""
        # The Hub lists public models to anyone: a 401 refuses the token sent, which HF_TOKEN gave.
        sent = status == 401 and "authorization" in error.response.request.headers
        mend = "; the HF_TOKEN sent was refused: renew it, or unset HF_TOKEN to crawl without one" if sent else ""
        raise HubError(f"{endpoint} answered HTTP {status or '?'}{retried}: {_reason(error)}{mend}", status) from None
    except hx.HTTPError as error:
        raise HubError(f"cannot reach {endpoint}: {type(error).__name__}: {_first_line(error)}") from None
    (_, there, there_port), (_, here, here_port) = _origin(str(response.url)), _origin(endpoint)
    if (there, there_port) != (here, here_port):
        # The client follows redirects; models listed by another host would be published as the endpoint's.
        shown = f"{there}:{there_port}" if there_port else there
        raise HubError(f"{endpoint}: a page was redirected to another host ({shown}); refused")
    return response


def _items(response: hx.Response) -> list[dict]:
    """The page's models, or `_Unreadable` saying what its body is instead."""
    try:
        items = parse_body(response.content)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        kind = response.headers.get("content-type", "?")
        reason = getattr(error, "msg", str(error))
        raise _Unreadable(f"HTTP {response.status_code} with an unreadable body ({kind}: {reason})") from None
    if not isinstance(items, list):
        raise _Unreadable(f"HTTP {response.status_code} with a body that is not a list of models")
    return items


def parse_body(body: bytes) -> object:
    """A page's JSON: orjson's parser, about twice as fast; the standard library's for what orjson refuses
    but Python's JSON reads (NaN, Infinity, integers beyond 64 bits), which `flows.rows` then blanks."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


HUB_LISTING = "/api/models"


def _on_endpoint(endpoint: str, url: str) -> str:
    """A next-page link to ask of `endpoint`. The Hub names itself (`https://huggingface.co`) in its links, and a
    mirror or proxy of it (hf-mirror.com, say) hands them on unchanged: a link of the Hub's own listing is asked of
    the endpoint, with its query (the cursor), never of the Hub. Any other link is kept as it is, for
    `_check_same_origin` to judge."""
    parts = urlsplit(url)
    if _origin(url) == _origin(endpoint) or _origin(url) != _origin(DEFAULT_ENDPOINT) or parts.path != HUB_LISTING:
        return url
    return f"{endpoint}{HUB_LISTING}" + (f"?{parts.query}" if parts.query else "")


def _check_same_origin(endpoint: str, url: str) -> None:
    if _origin(endpoint) != _origin(url):
        b = urlsplit(url)
        raise HubError(f"{endpoint}: the next-page link points to another host ({b.scheme}://{b.netloc}); refused")


DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str | None, int | None]:
    """Scheme, host and port as a URL's readers take them: the host in lower case, the scheme's default port as
    none at all (`https://HuggingFace.co:443` is `https://huggingface.co`)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # a port out of range or not a number: an origin of no host reached
        return scheme, f"{parts.netloc} (no valid port)", None
    return scheme, parts.hostname, None if port == DEFAULT_PORTS.get(scheme) else port


def _with_params(url: str, params: list[tuple[str, str]]) -> str:
    return str(hx.URL(url, params=params))


def _redact(url: str) -> str:
    return url if len(url) < 200 else url[:200] + "…"


MAX_REASON = 400  # characters of the Hub's own message kept in an error's one line


def _reason(error: HfHubHTTPError) -> str:
    """What the Hub said of a failed request, in one line: its own message when it sent one (the `error` of its
    JSON body, or `X-Error-Message`), with the request's id; else the client's first line, without the page's URL
    (long, and the same for every page but its cursor). The client's first line alone would drop the Hub's words
    for a 400 or 403, which it puts on a later line, and say only the request's id when the Hub sends one."""
    sent = error.response.request.headers.get("authorization", "") if error.response is not None else ""
    token = sent.partition(" ")[2].strip()
    server = " ".join((error.server_message or "").split())
    if not server:
        return without_token(_FOR_URL.sub("", _first_line(error)), token)
    # A long one keeps its end too, which often names what was refused ("…, not 'trendingScor'").
    said = server if len(server) <= MAX_REASON else f"{server[: MAX_REASON // 2]} … {server[-MAX_REASON // 2 :]}"
    return without_token(f"{said} (request id {error.request_id})" if error.request_id else said, token)


TOKEN_PIECE = 6  # characters of the token in a row that an answer may not repeat
_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)  # one character for one, unlike str.lower


def without_token(text: str, token: str) -> str:
    """`text` with every part of `token` it repeats, in any case, as `(token)`: a Hub may echo the token sent, or a
    part of it (`hf_AbCd…`, its last characters), and every such run of `TOKEN_PIECE` characters or more is hidden."""
    if len(token) < TOKEN_PIECE:
        return text.replace(token, "(token)") if token else text
    token, lower, hidden = token.translate(_LOWER), text.translate(_LOWER), [False] * len(text)
    pieces = {token[i : i + TOKEN_PIECE] for i in range(len(token) - TOKEN_PIECE + 1)}
    for i in range(len(text) - TOKEN_PIECE + 1):
        if lower[i : i + TOKEN_PIECE] in pieces:
            hidden[i : i + TOKEN_PIECE] = [True] * TOKEN_PIECE
    kept: list[str] = []
    for n, (char, hide) in enumerate(zip(text, hidden, strict=True)):
        if not hide:
            kept.append(char)
        elif n == 0 or not hidden[n - 1]:
            kept.append("(token)")
    return "".join(kept)


_FOR_URL = re.compile(r" for url:? ?'?[^' ]+'?")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
