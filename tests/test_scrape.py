"""Tests for spike_lib.data.scrape against a local replay server (127.0.0.1): never the internet."""

import json
from pathlib import Path

import pytest

from spike_lib.data import scrape as S

ROUTES = json.loads((Path(__file__).parent / "fixtures/scrape/replay.json").read_text())


@pytest.fixture
def server():
    srv, base = S.replay_server(ROUTES)
    yield srv, base
    srv.shutdown()
    srv.server_close()


def client(tmp_path, sleeps=None, **kw):
    clock = {"t": 0.0}

    def fake_sleep(s):  # no real waiting: record the wait and move a fake clock
        sleeps.append(round(s, 6))
        clock["t"] += s

    kw = {"min_interval": 1.0, "backoff": 0.5, "timeout": 0.3, **kw}
    return S.Client(tmp_path / "cache", sleep=fake_sleep, clock=lambda: clock["t"], **kw)


def test_scrape_ranks_by_views_and_survives_every_failure(server, tmp_path):
    srv, base = server
    sleeps = []
    c = client(tmp_path, sleeps)
    docs = S.scrape(
        c,
        {"physics": "Category:Physics"},
        per_category=2,
        api_url=f"{base}/w/api.php",
        rest_url=f"{base}/api/rest_v1",
        log=lambda *a: None,
    )
    assert [d["title"] for d in docs] == ["Albert Einstein", "Ampere"]
    assert docs[0]["source"] == "wikipedia-live" and docs[0]["category"] == "physics"
    assert docs[0]["url"] == "https://en.wikipedia.org/wiki/Albert_Einstein"
    assert docs[0]["text"].startswith("Albert Einstein")
    # 2 member pages + 4 view counts (+3 retries: 429, 500, bad JSON) + 2 extracts (+1 timeout)
    assert c.stats == {"requests": 12, "cached": 0, "retries": 4}
    assert len(srv.user_agents) == 12
    assert all(ua == S.USER_AGENT for ua in srv.user_agents)  # a descriptive User-Agent
    # requests 1 s apart (politeness); a retry waits Retry-After (0 s for the 429) or the
    # backoff 0.5 s, then politeness tops the gap up to 1 s
    assert sleeps == [1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.5, 0.5, 1.0, 0.5, 0.5, 1.0, 0.5, 0.5, 1.0]


def test_cache_makes_a_rerun_free_and_is_one_file_per_request(server, tmp_path):
    _srv, base = server
    c = client(tmp_path, [])
    url = f"{base}/api/rest_v1"
    assert S.monthly_views(c, "Albert Einstein", rest_url=url) == 612000 + 588000 + 701000
    files = list((tmp_path / "cache").rglob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["url"].startswith(base)
    again = client(tmp_path, [])
    assert S.monthly_views(again, "Albert Einstein", rest_url=url) == 1901000
    assert again.stats == {"requests": 0, "cached": 1, "retries": 0}
    assert not list((tmp_path / "cache").rglob(".tmp-*"))  # atomic writes leave no temp files


def test_top_viewed_drops_special_pages(server, tmp_path):
    _srv, base = server
    top = S.top_viewed(client(tmp_path, []), 2024, 1, rest_url=f"{base}/api/rest_v1")
    assert [a["article"] for a in top] == ["Albert_Einstein", "Aristotle"]


def test_gives_up_after_max_retries_with_exponential_backoff(server, tmp_path):
    srv, base = server
    sleeps = []
    c = client(tmp_path, sleeps, max_retries=3, min_interval=0.0)
    with pytest.raises(S.ScrapeError, match="gave up after 4 attempts \\(HTTP 503\\)"):
        S.monthly_views(c, "Abacus", rest_url=f"{base}/api/rest_v1")
    assert sleeps == [0.5, 1.0, 2.0]  # backoff * 2**(a-1)
    assert (
        srv.requests_seen[
            "/api/rest_v1/metrics/pageviews/per-article/en.wikipedia/all-access/user/Abacus/"
            "monthly/2024010100/2024123100"
        ]
        == 4
    )
    assert not list((tmp_path / "cache").rglob("*.json"))  # failures are not cached


def test_a_404_is_not_retried(server, tmp_path):
    _srv, base = server
    c = client(tmp_path, [])
    with pytest.raises(S.ScrapeError, match="HTTP 404.*retrying will not help"):
        c.get_json(f"{base}/w/api.php", {"action": "nothing"})
    assert c.stats["requests"] == 1
    assert S.monthly_views(c, "No such page", rest_url=f"{base}/api/rest_v1") == 0


def test_retry_after_parsing():
    assert S._retry_after("3") == 3.0
    assert S._retry_after("-1") == 0.0
    assert S._retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert S._retry_after(None) is None
