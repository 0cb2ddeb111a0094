"""The stand-in Hub answers the real huggingface_hub client like the Hub's listing API, faults included."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
from huggingface_hub.utils import http_backoff
from huggingface_hub.utils import httpx as hx

from flows import standin_faults as faults
from flows.standin_hub import StandinHub, World, decode_cursor, load_world, write_world

ROOT = Path(__file__).resolve().parents[1]


def model(repo_id: str, **fields: object) -> dict:
    return {"id": repo_id, "author": repo_id.split("/")[0], "private": False, **fields}


# A tiny world: three labs, a quantizer, and a legacy repo without dates or counts.
LABS = [
    model("Qwen/Qwen3-8B", createdAt="2025-04-28T00:00:00.000Z", lastModified="2025-07-01T00:00:00.000Z",
          downloads=900, downloadsAllTime=5000, likes=80, trendingScore=40,
          tags=["transformers", "text-generation", "region:us"], pipeline_tag="text-generation",
          library_name="transformers", gated=False, safetensors={"parameters": {"BF16": 8}, "total": 8}),
    model("Qwen/Qwen3-0.6B", createdAt="2025-04-27T00:00:00.000Z", lastModified="2025-06-01T00:00:00.000Z",
          downloads=300, downloadsAllTime=9000, likes=20, trendingScore=10,
          tags=["transformers", "text-generation"], pipeline_tag="text-generation", library_name="transformers"),
    model("meta-llama/Llama-3.1-8B", createdAt="2024-07-18T00:00:00.000Z",
          lastModified="2024-09-25T00:00:00.000Z", downloads=700, downloadsAllTime=20000, likes=500,
          trendingScore=5, tags=["transformers", "text-generation"], pipeline_tag="text-generation",
          library_name="transformers", gated="manual"),
    model("unsloth/Qwen3-8B-GGUF", createdAt="2025-04-29T00:00:00.000Z",
          lastModified="2025-05-01T00:00:00.000Z", downloads=100, downloadsAllTime=400, likes=3,
          trendingScore=70, tags=["gguf", "base_model:Qwen/Qwen3-8B", "base_model:quantized:Qwen/Qwen3-8B"],
          library_name="gguf"),
    model("deepseek-ai/DeepSeek-R1", createdAt="2025-01-20T00:00:00.000Z",
          lastModified="2025-03-27T00:00:00.000Z", downloads=500, downloadsAllTime=30000, likes=12000,
          trendingScore=20, tags=["transformers", "text-generation", "conversational"],
          pipeline_tag="text-generation", library_name="transformers"),
    model("legacy/bert-tiny", tags=["fill-mask"]),
]
IDS = [m["id"] for m in LABS]


def numbered(n: int) -> list[dict]:
    """`n` models named org/m00.. in world order."""
    return [model(f"org/m{i:02d}", downloads=i, tags=["t"]) for i in range(n)]


@pytest.fixture
def api_for(hub_online: None):
    return lambda hub, **kw: HfApi(endpoint=hub.url, token=False, **kw)


# -- listing ----------------------------------------------------------------------------------------------

def test_listing_follows_next_links_across_pages_until_the_world_ends(api_for) -> None:
    with StandinHub(numbered(10), page_size=3) as hub:
        ids = [m.id for m in api_for(hub).list_models()]
    assert ids == [f"org/m{i:02d}" for i in range(10)]
    assert [r.page for r in hub.listing_requests()] == [1, 2, 3, 4]
    assert hub.pages_served == 4 and hub.page_requests == {1: 1, 2: 1, 3: 1, 4: 1}


def test_the_next_link_repeats_the_query_and_adds_an_opaque_cursor() -> None:
    with StandinHub(numbered(5), page_size=2) as hub:
        response = hx.get(f"{hub.url}/api/models", params=[("sort", "downloads"), ("filter", "t")])
    link = response.links["next"]["url"]
    assert link.startswith(f"{hub.url}/api/models?sort=downloads&filter=t&cursor=")
    assert decode_cursor(link.rsplit("cursor=", 1)[1])["pg"] == 2
    assert [m["id"] for m in response.json()] == ["org/m04", "org/m03"]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("created_at", ["unsloth/Qwen3-8B-GGUF", "Qwen/Qwen3-8B", "Qwen/Qwen3-0.6B", "deepseek-ai/DeepSeek-R1",
                        "meta-llama/Llama-3.1-8B", "legacy/bert-tiny"]),
        ("downloads", ["Qwen/Qwen3-8B", "meta-llama/Llama-3.1-8B", "deepseek-ai/DeepSeek-R1", "Qwen/Qwen3-0.6B",
                       "unsloth/Qwen3-8B-GGUF", "legacy/bert-tiny"]),
        ("last_modified", ["Qwen/Qwen3-8B", "Qwen/Qwen3-0.6B", "unsloth/Qwen3-8B-GGUF", "deepseek-ai/DeepSeek-R1",
                           "meta-llama/Llama-3.1-8B", "legacy/bert-tiny"]),
        ("likes", ["deepseek-ai/DeepSeek-R1", "meta-llama/Llama-3.1-8B", "Qwen/Qwen3-8B", "Qwen/Qwen3-0.6B",
                   "unsloth/Qwen3-8B-GGUF", "legacy/bert-tiny"]),
        ("trending_score", ["unsloth/Qwen3-8B-GGUF", "Qwen/Qwen3-8B", "deepseek-ai/DeepSeek-R1", "Qwen/Qwen3-0.6B",
                            "meta-llama/Llama-3.1-8B", "legacy/bert-tiny"]),
    ],
)
def test_every_sort_is_descending_with_models_lacking_the_key_last(api_for, sort: str, expected: list) -> None:
    with StandinHub(LABS, page_size=4) as hub:
        assert [m.id for m in api_for(hub).list_models(sort=sort)] == expected


def test_no_sort_keeps_world_order(api_for) -> None:
    with StandinHub(LABS, page_size=4) as hub:
        assert [m.id for m in api_for(hub).list_models()] == IDS


def test_author_lists_exactly_that_namespace(api_for) -> None:
    with StandinHub(LABS, page_size=1) as hub:
        api = api_for(hub)
        assert [m.id for m in api.list_models(author="Qwen", sort="downloads")] == ["Qwen/Qwen3-8B", "Qwen/Qwen3-0.6B"]
        assert list(api.list_models(author="Qwe")) == []


def test_search_is_a_case_insensitive_substring_of_the_id(api_for) -> None:
    with StandinHub(LABS, page_size=2) as hub:
        assert [m.id for m in api_for(hub).list_models(search="qwen3-8b")] == ["Qwen/Qwen3-8B", "unsloth/Qwen3-8B-GGUF"]


def test_filter_requires_every_tag(api_for) -> None:
    with StandinHub(LABS, page_size=2) as hub:
        api = api_for(hub)
        assert [m.id for m in api.list_models(filter=["text-generation", "conversational"])] == [
            "deepseek-ai/DeepSeek-R1"
        ]
        assert [m.id for m in api.list_models(filter="base_model:quantized:Qwen/Qwen3-8B")] == [
            "unsloth/Qwen3-8B-GGUF"
        ]


def test_a_limit_is_the_size_of_each_page_and_the_next_link_goes_on_past_it(api_for) -> None:
    """As the Hub's: the client stops once it has `limit` models, without asking for the next page."""
    with StandinHub(LABS, page_size=4) as hub:
        assert len(list(api_for(hub).list_models(sort="downloads", limit=3))) == 3
        response = hx.get(f"{hub.url}/api/models", params={"sort": "downloads", "limit": 3})
    assert len(response.json()) == 3 and "limit=3" in response.links["next"]["url"]
    assert len(hub.listing_requests()) == 2


def test_a_limit_beyond_the_stand_ins_page_size_is_cut_to_it(api_for) -> None:
    with StandinHub(numbered(10), page_size=3) as hub:
        response = hx.get(f"{hub.url}/api/models", params={"limit": 7})
        pages = [len(response.json())]
        while "next" in response.links:
            response = hx.get(response.links["next"]["url"])
            pages.append(len(response.json()))
        assert len(list(api_for(hub).list_models(limit=7))) == 7
    assert pages == [3, 3, 3, 1]


def test_expand_returns_only_the_requested_properties_under_the_hubs_names(api_for) -> None:
    with StandinHub(LABS) as hub:
        [first, *_] = api_for(hub).list_models(expand=["pipeline_tag", "library_name", "safetensors"])
        raw = hx.get(f"{hub.url}/api/models", params=[("expand", "pipeline_tag"), ("expand", "downloadsAllTime")])
    assert (first.pipeline_tag, first.library_name, first.safetensors.total) == ("text-generation", "transformers", 8)
    assert first.downloads is None and first.tags is None and first.author is None
    assert set(raw.json()[0]) == {"_id", "id", "pipeline_tag", "downloadsAllTime"}


def test_without_expand_the_listing_projects_the_usual_fields() -> None:
    with StandinHub(LABS) as hub:
        first = hx.get(f"{hub.url}/api/models").json()[0]
    assert set(first) == {"_id", "id", "author", "downloads", "likes", "tags", "pipeline_tag", "library_name",
                          "createdAt", "private"}


def test_ids_are_increasing_hex_strings() -> None:
    with StandinHub(numbered(3)) as hub:
        ids = [m["_id"] for m in hx.get(f"{hub.url}/api/models").json()]
    assert ids == sorted(ids) and len(set(ids)) == 3 and all(int(i, 16) for i in ids)


@pytest.mark.parametrize("expand", ["baseModels", "childrenModelCount", "usedStorage"])
def test_the_list_endpoint_rejects_single_model_expands_with_a_400(api_for, expand: str) -> None:
    with StandinHub(LABS) as hub, pytest.raises(HfHubHTTPError) as raised:
        list(api_for(hub).list_models(expand=[expand]))
    assert raised.value.response.status_code == 400
    assert expand in raised.value.response.json()["error"]


def test_a_forged_cursor_is_a_400() -> None:
    with StandinHub(LABS) as hub:
        response = hx.get(f"{hub.url}/api/models", params={"cursor": "not-a-cursor"})
    assert response.status_code == 400 and "cursor" in response.json()["error"]


def test_model_info_returns_the_whole_record(api_for) -> None:
    with StandinHub(LABS) as hub:
        info = api_for(hub).model_info("meta-llama/Llama-3.1-8B")
    assert (info.id, info.gated, info.downloads_all_time) == ("meta-llama/Llama-3.1-8B", "manual", 20000)


def test_model_info_derives_base_models_and_children_from_tags(api_for) -> None:
    with StandinHub(LABS) as hub:
        api = api_for(hub)
        quant = api.model_info("unsloth/Qwen3-8B-GGUF", expand=["baseModels"])
        root = api.model_info("Qwen/Qwen3-8B", expand=["childrenModelCount"])
    assert quant.base_models == {"relation": "quantized", "models": [{"id": "Qwen/Qwen3-8B"}]}
    assert root.children_model_count == 1


def test_model_info_of_an_unknown_repo_is_repository_not_found(api_for) -> None:
    with StandinHub(LABS) as hub, pytest.raises(RepositoryNotFoundError):
        api_for(hub).model_info("nobody/nothing")


def test_hostile_records_are_served_as_given(api_for) -> None:
    hostile = [{"author": "ghost"}, "just a string", {"id": 5, "downloads": "lots", "tags": "t"}, model("ok/fine")]
    with StandinHub(hostile) as hub:
        body = hx.get(f"{hub.url}/api/models", params={"sort": "downloads", "filter": "t"}).json()
        everything = hx.get(f"{hub.url}/api/models", params={"full": "true"}).json()
        with pytest.raises(KeyError):
            list(api_for(hub).list_models())
    assert body == []
    assert everything[1] == "just a string" and everything[2]["downloads"] == "lots" and "id" not in everything[0]


def test_the_world_round_trips_through_jsonl(tmp_path: Path) -> None:
    path = write_world(LABS, tmp_path / "world.jsonl")
    assert load_world(path) == LABS


def test_loading_a_world_names_the_line_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "world.jsonl"
    path.write_text('{"id": "a/b"}\n\n{"id": oops}\n')
    with pytest.raises(ValueError, match=r"world.jsonl:3"):
        load_world(path)


def test_a_world_can_be_replaced_while_serving(api_for) -> None:
    with StandinHub(numbered(2)) as hub:
        hub.replace_world(World(LABS).warm())
        assert [m.id for m in api_for(hub).list_models()] == IDS


# -- request log --------------------------------------------------------------------------------------

def test_the_request_log_keeps_no_authorization_value(hub_online: None) -> None:
    canary = "hf_canaryTOKENnotARealOne0123456789"
    with StandinHub(LABS) as hub:
        list(HfApi(endpoint=hub.url, token=canary).list_models(author="Qwen"))
    [record] = hub.requests
    assert record.authorized and "authorization" not in record.headers
    assert record.param("author") == ["Qwen"] and record.status == 200
    assert canary not in repr(hub.requests) and canary not in repr(vars(hub))
    assert hub.received_token(canary) and not hub.received_token("hf_other")


# -- faults -------------------------------------------------------------------------------------------

def test_a_429_with_reset_zero_makes_the_client_wait_about_a_second_and_retry(api_for) -> None:
    with StandinHub(numbered(4), page_size=2, faults=[faults.rate_limit(1, reset=0, pages=2)]) as hub:
        started = time.monotonic()
        assert len(list(api_for(hub).list_models())) == 4
        elapsed = time.monotonic() - started
    assert [(r.page, r.status) for r in hub.listing_requests()] == [(1, 200), (2, 429), (2, 200)]
    assert 0.9 < elapsed < 3
    assert hub.page_requests == {1: 1, 2: 2}


def test_a_429_carries_ratelimit_headers_unless_told_not_to() -> None:
    with StandinHub(LABS, faults=[faults.rate_limit(1, reset=7, quota=500, window=300)]) as hub:
        limited = hx.get(f"{hub.url}/api/models")
        hub.set_faults(faults.rate_limit(1, headers=False))
        bare = hx.get(f"{hub.url}/api/models")
    assert limited.status_code == 429 and limited.headers["RateLimit"] == '"api";r=0;t=7'
    assert limited.headers["RateLimit-Policy"] == '"fixed window";"api";q=500;w=300'
    assert bare.status_code == 429 and "RateLimit" not in bare.headers


def test_a_quota_tells_what_is_left_on_every_answer_and_refuses_past_it_until_the_window_ends() -> None:
    """As the Hub's: `RateLimit` on every answer, not only on a 429 (huggingface_hub#3553), in fixed windows."""
    with StandinHub(LABS, quota=(2, 3)) as hub:
        answers = [hx.get(f"{hub.url}/api/models") for _ in range(3)]
        time.sleep(float(answers[-1].headers["RateLimit"].rsplit("t=", 1)[1]))
        again = hx.get(f"{hub.url}/api/models")
    assert [a.status_code for a in answers] == [200, 200, 429] and again.status_code == 200
    assert [a.headers["RateLimit"].split(";t=")[0] for a in answers] == ['"api";r=1', '"api";r=0', '"api";r=0']
    assert all(a.headers["RateLimit-Policy"] == '"fixed window";"api";q=2;w=3' for a in answers)
    assert hub.listing_requests()[2].faults == ["quota"]


def test_server_errors_answer_each_5xx_and_the_client_retries_them(api_for) -> None:
    with StandinHub(LABS) as hub:
        hub.set_faults(*(faults.server_error(s) for s in (500, 502, 503, 504)))
        statuses = [hx.get(f"{hub.url}/api/models").status_code for _ in range(5)]
        hub.set_faults(faults.server_error(503, times=1))
        assert len(list(api_for(hub).list_models())) == len(LABS)
    assert statuses == [500, 502, 503, 504, 200]


def test_malformed_json_makes_the_client_raise_a_decode_error(api_for) -> None:
    with StandinHub(LABS, faults=[faults.malformed_json()]) as hub, pytest.raises(json.JSONDecodeError):
        list(api_for(hub).list_models())


def test_a_truncated_body_is_a_cut_valid_start_with_a_matching_length(api_for) -> None:
    with StandinHub(LABS) as hub:
        whole = hx.get(f"{hub.url}/api/models").content
        hub.set_faults(faults.truncated_body(times=2))
        cut = hx.get(f"{hub.url}/api/models")
        with pytest.raises(json.JSONDecodeError):
            list(api_for(hub).list_models())
    assert cut.status_code == 200 and whole.startswith(cut.content) and len(cut.content) < len(whole)
    assert int(cut.headers["Content-Length"]) == len(cut.content)


def test_an_html_error_page_comes_with_status_200(api_for) -> None:
    with StandinHub(LABS, faults=[faults.html_page(times=2)]) as hub:
        page = hx.get(f"{hub.url}/api/models")
        with pytest.raises(json.JSONDecodeError):
            list(api_for(hub).list_models())
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


def test_a_dropped_connection_is_a_protocol_error_the_client_retries(api_for) -> None:
    with StandinHub(LABS, faults=[faults.dropped_connection()]) as hub:
        with pytest.raises(hx.RemoteProtocolError):
            hx.get(f"{hub.url}/api/models")
        hub.set_faults(faults.dropped_connection())
        assert len(list(api_for(hub).list_models())) == len(LABS)
    assert [r.status for r in hub.listing_requests()] == [None, None, 200]


def test_a_stalled_answer_is_a_read_timeout_the_client_retries(hub_online: None) -> None:
    with StandinHub(LABS, faults=[faults.read_timeout(1.0)]) as hub:
        with pytest.raises(hx.ReadTimeout):
            hx.get(f"{hub.url}/api/models", timeout=0.2)
        hub.set_faults(faults.read_timeout(1.0))
        response = http_backoff("GET", f"{hub.url}/api/models", timeout=0.2)
        assert len(response.json()) == len(LABS)
        assert hub.stall_injected == 2.0


def test_a_slow_body_comes_in_pieces_none_late_enough_for_a_read_timeout(hub_online: None) -> None:
    with StandinHub(LABS, faults=[faults.slow_body(4, 0.3)]) as hub:
        began = time.monotonic()
        with hx.stream("GET", f"{hub.url}/api/models", timeout=0.5) as response:
            pieces = [piece for piece in response.iter_raw() if piece]
        assert len(pieces) >= 4 and time.monotonic() - began >= 0.9
        assert json.loads(b"".join(pieces)) and [r.faults for r in hub.listing_requests()] == [["slow_body"]]


def test_a_next_link_can_point_to_another_host() -> None:
    with StandinHub(numbered(4), page_size=2, faults=[faults.foreign_link("http://elsewhere.invalid")]) as hub:
        link = hx.get(f"{hub.url}/api/models", params={"sort": "likes"}).links["next"]["url"]
    assert link.startswith("http://elsewhere.invalid/api/models?sort=likes&cursor=")


def test_a_looping_link_sends_the_client_back_to_a_page_it_already_had(api_for) -> None:
    with StandinHub(numbered(6), page_size=2, faults=[faults.looping_link(times=None, pages=1)]) as hub:
        first = hx.get(f"{hub.url}/api/models", params={"author": "org"})
        ids = [m.id for m in itertools.islice(api_for(hub).list_models(), 6)]
    assert first.links["next"]["url"] == f"{hub.url}/api/models?author=org"
    assert ids == ["org/m00", "org/m01"] * 3


def test_duplicate_ids_repeat_the_end_of_the_previous_page(api_for) -> None:
    with StandinHub(numbered(6), page_size=3, faults=[faults.duplicate_ids(count=2, pages=2)]) as hub:
        ids = [m.id for m in api_for(hub).list_models()]
    assert ids == ["org/m00", "org/m01", "org/m02", "org/m01", "org/m02", "org/m03", "org/m04", "org/m05"]


def test_latency_is_added_to_each_page_and_totalled(api_for) -> None:
    with StandinHub(numbered(6), page_size=2, faults=[faults.latency(0.1)]) as hub:
        started = time.monotonic()
        list(api_for(hub).list_models())
        elapsed = time.monotonic() - started
    assert hub.latency_injected == pytest.approx(0.3) and elapsed >= 0.3


def test_faults_hit_only_their_pages_and_counts_and_chance_is_seeded() -> None:
    burst = faults.Faults(faults.rate_limit(2, pages=[3]), faults.latency(0.5, pages=1))
    assert [p.kinds for p in map(burst.plan, [1, 2, 3, 3, 3])] == [["latency"], [], ["rate_limit"], ["rate_limit"], []]

    def draws(seed: int) -> list[bool]:
        chance = faults.Faults(faults.server_error(500, times=None, probability=0.5), seed=seed)
        return [chance.plan(1).replacement is not None for _ in range(20)]

    assert draws(1) == draws(1) and 0 < sum(draws(1)) < 20


def test_faults_can_be_swapped_while_serving() -> None:
    with StandinHub(LABS) as hub:
        hub.faults = [faults.server_error(502, times=None)]
        assert hx.get(f"{hub.url}/api/models").status_code == 502
        hub.faults = None
        assert hx.get(f"{hub.url}/api/models").status_code == 200


# -- as a process ---------------------------------------------------------------------------------------

def test_the_module_runs_as_a_process_that_prints_its_url_first(tmp_path: Path, api_for) -> None:
    world = write_world(numbered(5), tmp_path / "world.jsonl")
    process = subprocess.Popen(
        [sys.executable, "-m", "flows.standin_hub", "--world", str(world), "--page-size", "2",
         "--fault", '{"kind": "duplicate_ids", "count": 1, "pages": [2], "times": 1}'],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        ids = [m.id for m in HfApi(endpoint=url, token=False).list_models(sort="downloads")]
        assert ids == ["org/m04", "org/m03", "org/m03", "org/m02", "org/m01", "org/m00"]
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=10)
    assert process.returncode == 0 and "3 pages" in err
