"""Tiny named worlds for the stand-in Hub, in the Hub's own field names."""

from __future__ import annotations

import datetime as dt

LABS = ("Qwen", "meta-llama", "deepseek-ai", "mistralai", "unsloth", "someone")


def model(
    model_id: str,
    *,
    downloads: int = 0,
    all_time: int | None = None,
    created: str | None = None,
    tags: list[str] | None = None,
    pipeline: str | None = "text-generation",
    params: int | None = None,
) -> dict:
    """One Hub listing item."""
    item = {
        "id": model_id,
        "author": model_id.split("/")[0],
        "createdAt": created or "2025-01-01T00:00:00.000Z",
        "lastModified": created or "2025-01-01T00:00:00.000Z",
        "downloads": downloads,
        "downloadsAllTime": all_time if all_time is not None else downloads * 10,
        "likes": downloads % 7,
        "trendingScore": downloads % 5,
        "tags": tags or [],
        "pipeline_tag": pipeline,
        "library_name": "transformers",
        "gated": False,
        "private": False,
    }
    if params is not None:
        item["safetensors"] = {"parameters": {"BF16": params}, "total": params}
    return item


def world(n: int) -> list[dict]:
    """`n` models spread over a few namespaces, distinct creation times and downloads."""
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    return [
        model(
            f"{LABS[i % len(LABS)]}/model-{i:05d}",
            downloads=(i * 7919) % 10_000,
            created=(start + dt.timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            tags=[f"base_model:finetune:{LABS[0]}/model-00000"] if i % 4 == 1 else [],
            params=(i % 5) * 3_000_000_000 or None,
        )
        for i in range(n)
    ]
