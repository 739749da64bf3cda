"""A polite live Wikipedia scraper (standard library only): top-viewed articles per category.

Taught in: notebooks/03_corpus.ipynb
"""

# for readers with internet access: it asks the MediaWiki Action API for a category's pages and
# plain-text extracts, and the Wikimedia REST API for page views, waits between requests, retries
# 429/5xx/timeouts with exponential backoff, and caches every response on disk (one JSON file per
# request, written atomically) so an interrupted run resumes where it stopped. The output
# documents have the corpus format. Tests and chapter 3 run it against `replay_server`, a local
# server that replays canned responses, never the internet.
import hashlib
import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from spike_lib.core.atomic import write_json

API_URL = "https://en.wikipedia.org/w/api.php"
REST_URL = "https://wikimedia.org/api/rest_v1"
# Wikimedia asks for a User-Agent that names the tool and a way to reach its user: pass your own
# e-mail with Client(user_agent=...) when you scrape for real
USER_AGENT = (
    "spike-lib-course-scraper/0.1 (educational; "
    "https://github.com/spiking-course/spiking-transformers-from-scratch) python-urllib"
)
# the original project's categories -> a Wikipedia category to rank by page views (a starting
# point: edit it to taste)
CATEGORY_PAGES = {
    "people": "Category:Nobel Peace Prize laureates",
    "biology": "Category:Biology",
    "physics": "Category:Physics",
    "history": "Category:History",
    "chemistry": "Category:Chemistry",
    "mathematics": "Category:Mathematics",
    "geography": "Category:Geography",
    "philosophy": "Category:Philosophy",
    "computing": "Category:Computing",
    "literature": "Category:English-language novels",
}
RETRY_STATUS = {429, 500, 502, 503, 504}


class ScrapeError(RuntimeError):
    """A request that failed for good (after retries, or a 4xx that retrying cannot fix)."""


class Client:
    """HTTP GET of JSON with a rate limit, retries with exponential backoff and a disk cache.

    Wait before attempt a (a = 1, 2, ...): Retry-After seconds if the server sent it (429/503),
    else backoff * 2**(a - 1). Requests are at least `min_interval` seconds apart.
    """

    def __init__(
        self,
        cache_dir,
        min_interval=1.0,
        max_retries=5,
        backoff=1.0,
        timeout=30.0,
        user_agent=USER_AGENT,
        sleep=time.sleep,
        clock=time.monotonic,
    ):
        self.cache_dir = Path(cache_dir).expanduser()
        self.min_interval, self.max_retries = min_interval, max_retries
        self.backoff, self.timeout, self.user_agent = backoff, timeout, user_agent
        self.sleep, self.clock = sleep, clock
        self.last_request = None
        self.stats = {"requests": 0, "cached": 0, "retries": 0}

    def cache_path(self, url: str) -> Path:
        key = hashlib.sha256(url.encode("utf-8")).hexdigest()
        return self.cache_dir / key[:2] / f"{key}.json"

    def get_json(self, base: str, params=None) -> dict:
        """JSON of GET base?params (params sorted, so one request has one cache file)."""
        url = base + ("?" + urllib.parse.urlencode(sorted(params.items())) if params else "")
        path = self.cache_path(url)
        if path.exists():
            self.stats["cached"] += 1
            return json.loads(path.read_text(encoding="utf-8"))["response"]
        last = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.stats["retries"] += 1
                self.sleep(last[1] if last[1] is not None else self.backoff * 2 ** (attempt - 1))
            try:
                data = self._fetch(url)
            except _Retry as err:
                last = (err.reason, err.retry_after)
                continue
            _write_atomic(path, {"url": url, "response": data})
            return data
        raise ScrapeError(
            f"{url}: gave up after {self.max_retries + 1} attempts ({last[0]}); "
            f"try again later, the cache keeps what already succeeded"
        )

    def _fetch(self, url: str) -> dict:
        if self.last_request is not None:  # politeness: space requests min_interval apart
            wait = self.min_interval - (self.clock() - self.last_request)
            if wait > 0:
                self.sleep(wait)
        self.last_request = self.clock()
        self.stats["requests"] += 1
        req = urllib.request.Request(
            url, headers={"User-Agent": self.user_agent, "Accept": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                body = resp.read()
        except urllib.error.HTTPError as err:
            if err.code in RETRY_STATUS:
                raise _Retry(f"HTTP {err.code}", _retry_after(err.headers.get("Retry-After")))
            raise ScrapeError(
                f"{url}: HTTP {err.code} {err.reason}; check the title or "
                f"category name (retrying will not help)"
            ) from err
        except TimeoutError as err:
            raise _Retry(f"timeout after {self.timeout} s", None) from err
        except urllib.error.URLError as err:
            if isinstance(err.reason, (TimeoutError, socket.timeout)):
                raise _Retry(f"timeout after {self.timeout} s", None) from err
            raise _Retry(f"connection error {err.reason}", None) from err
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise _Retry(f"response is not JSON ({err})", None) from err


class _Retry(Exception):
    def __init__(self, reason, retry_after):
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


def _retry_after(value):
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return None  # absent, or an HTTP date: use the exponential backoff


def _write_atomic(path: Path, obj) -> None:
    write_json(path, obj, indent=None, sort_keys=False, ensure_ascii=False)


def category_members(client, category, limit=200, api_url=API_URL) -> list[str]:
    """Titles of the articles (namespace 0) in a category, following `continue` pages."""
    titles, cont = [], {}
    while len(titles) < limit:
        params = {
            "action": "query",
            "list": "categorymembers",
            "cmtitle": category,
            "cmnamespace": "0",
            "cmtype": "page",
            "cmlimit": str(min(500, limit)),
            "format": "json",
            "formatversion": "2",
            **cont,
        }
        data = client.get_json(api_url, params)
        titles += [m["title"] for m in data.get("query", {}).get("categorymembers", [])]
        if "continue" not in data:
            break
        cont = {k: v for k, v in data["continue"].items() if k != "continue"}
    return titles[:limit]


def monthly_views(client, title, start="20240101", end="20241231", rest_url=REST_URL) -> int:
    """Page views of an article by users over [start, end] (REST per-article endpoint)."""
    name = urllib.parse.quote(title.replace(" ", "_"), safe="")
    url = (
        f"{rest_url}/metrics/pageviews/per-article/en.wikipedia/all-access/user/{name}/"
        f"monthly/{start}00/{end}00"
    )
    try:
        return sum(int(item["views"]) for item in client.get_json(url).get("items", []))
    except ScrapeError as err:
        if "HTTP 404" in str(err):  # no views recorded for this page
            return 0
        raise


def top_viewed(client, year, month, limit=100, rest_url=REST_URL) -> list[dict]:
    """The month's most viewed articles [{'article', 'views', 'rank'}], special pages removed."""
    url = f"{rest_url}/metrics/pageviews/top/en.wikipedia/all-access/{year}/{month:02d}/all-days"
    articles = client.get_json(url)["items"][0]["articles"]
    skip = ("Main_Page", "Special:", "Wikipedia:", "Portal:", "File:", "Help:", "-")
    return [a for a in articles if not a["article"].startswith(skip)][:limit]


def extract(client, title, api_url=API_URL) -> str:
    """Plain-text extract of a whole article (TextExtracts, explaintext)."""
    params = {
        "action": "query",
        "prop": "extracts",
        "explaintext": "1",
        "titles": title,
        "redirects": "1",
        "format": "json",
        "formatversion": "2",
    }
    pages = client.get_json(api_url, params).get("query", {}).get("pages", [])
    return pages[0].get("extract", "") if pages else ""


def scrape(
    client,
    categories=None,
    per_category=100,
    api_url=API_URL,
    rest_url=REST_URL,
    candidates=200,
    log=print,
) -> list[dict]:
    """Top-viewed articles per category as corpus documents (source 'wikipedia-live').

    For each category: up to `candidates` member pages, ranked by 2024 user page views,
    the top `per_category` fetched as plain text and cleaned like the shipped corpus.
    """
    from spike_lib.data.clean import normalize
    from spike_lib.data.corpus import make_record

    docs = []
    for cat, page in (categories or CATEGORY_PAGES).items():
        titles = category_members(client, page, candidates, api_url)
        ranked = sorted(titles, key=lambda t: (-monthly_views(client, t, rest_url=rest_url), t))
        for title in ranked[:per_category]:
            text = normalize(extract(client, title, api_url))
            if text:
                url = "https://en.wikipedia.org/wiki/" + title.replace(" ", "_")
                docs.append(make_record("wikipedia-live", title, cat, "CC BY-SA 4.0", url, text))
        log(f"{cat}: {sum(d['category'] == cat for d in docs)} articles from {page}")
    return docs


def replay_server(routes: dict, host="127.0.0.1"):
    """Start a local HTTP server that replays recorded responses; returns (server, base_url).

    routes: {"/path?sorted&query": [response, ...]} with response = {"status", "json" or
    "body", "headers", "delay"}; the n-th request of a route gets the n-th response (the last
    one repeats). Unknown routes get 404. Call server.shutdown() when done.
    """
    counters, user_agents, lock = {}, [], threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            with lock:
                user_agents.append(self.headers.get("User-Agent", ""))
                seq = routes.get(self.path)
                n = counters.get(self.path, 0)
                counters[self.path] = n + 1
            if seq is None:
                resp = {"status": 404, "json": {"error": f"no recorded response for {self.path}"}}
            else:
                resp = seq[min(n, len(seq) - 1)]
            time.sleep(resp.get("delay", 0))
            body = resp["body"].encode() if "body" in resp else json.dumps(resp["json"]).encode()
            try:
                self.send_response(resp.get("status", 200))
                for key, value in resp.get("headers", {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out and left

        def log_message(self, *args):  # keep test and notebook output clean
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    server.requests_seen, server.user_agents = counters, user_agents
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}"
