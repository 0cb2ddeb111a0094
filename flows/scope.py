"""What a refresh crawls: `full`, `top:N` or `orgs:A,B` / `orgs:@FILE`, as Hub listing queries."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

# The Hub listing fields each snapshot keeps (DESIGN.md, Crawl); `id` always comes back. `private` is asked so that
# the private repos a token lists (its own and its organisations') are told apart and left out: a snapshot holds
# public models only.
EXPAND = (
    "author",
    "createdAt",
    "lastModified",
    "downloads",
    "downloadsAllTime",
    "likes",
    "trendingScore",
    "tags",
    "pipeline_tag",
    "library_name",
    "gated",
    "safetensors",
    "private",
)

_NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


class ScopeError(ValueError):
    """A scope string that cannot be understood."""


@dataclass(frozen=True)
class Listing:
    """One paginated `/api/models` query: the client-side names of `HfApi.list_models` arguments."""

    sort: str | None = None
    author: str | None = None
    limit: int | None = None
    expand: tuple[str, ...] = EXPAND

    def params(self) -> list[tuple[str, str]]:
        """The query parameters, encoded exactly as `HfApi.list_models` sends them."""
        server_sort = {"created_at": "createdAt", "last_modified": "lastModified", "trending_score": "trendingScore"}
        params: list[tuple[str, str]] = []
        if self.author:
            params.append(("author", self.author))
        if self.sort:
            params.append(("sort", server_sort.get(self.sort, self.sort)))
        if self.limit is not None:
            params.append(("limit", str(self.limit)))
        params.extend(("expand", name) for name in self.expand)
        return params

    def describe(self) -> str:
        parts = [f"sort={self.sort}" if self.sort else "", f"author={self.author}" if self.author else ""]
        parts.append(f"limit={self.limit}" if self.limit is not None else "")
        return " ".join(p for p in parts if p) or "default order"


@dataclass(frozen=True)
class Scope:
    """A parsed `--scope`: its canonical text and the listings that make it up."""

    text: str
    listings: tuple[Listing, ...] = field(default_factory=tuple)


def parse_scope(text: str) -> Scope:
    """Parse `full`, `top:N`, `orgs:A,B` or `orgs:@FILE` (one namespace per line, `#` comments)."""
    text = text.strip()
    if text == "full":
        return Scope("full", (Listing(sort="created_at"),))
    if text.startswith("top:"):
        try:
            n = int(text.removeprefix("top:"))
        except ValueError:
            raise ScopeError(f"scope {text!r}: N in top:N must be a whole number") from None
        if n <= 0:
            raise ScopeError(f"scope {text!r}: N in top:N must be positive")
        return Scope(f"top:{n}", (Listing(sort="downloads", limit=n),))
    if text.startswith("orgs:"):
        spec = text.removeprefix("orgs:")
        names = _names_from_file(spec[1:]) if spec.startswith("@") else [n.strip() for n in spec.split(",")]
        names = list(dict.fromkeys(n for n in names if n))
        if not names:
            raise ScopeError(f"scope {text!r} names no organisation")
        bad = [n for n in names if not _NAMESPACE.match(n)]
        if bad:
            raise ScopeError(f"scope {text!r}: {bad[0]!r} is not a Hub namespace")
        # By creation date, as `full`: the Hub's default order is by trending score, which moves while a listing is
        # paged (and between a crawl and its resumption), so that a model trending past the cursor is never listed.
        return Scope("orgs:" + ",".join(names), tuple(Listing(sort="created_at", author=n) for n in names))
    raise ScopeError(f"unknown scope {text!r}: use full, top:N, orgs:NAME,NAME or orgs:@FILE")


def _names_from_file(path: str) -> list[str]:
    try:
        lines = Path(path).expanduser().read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ScopeError(f"cannot read organisations file {path!r}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise ScopeError(f"cannot read organisations file {path!r}: not UTF-8 ({error.reason})") from None
    return [line.split("#", 1)[0].strip() for line in lines]
