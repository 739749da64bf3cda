"""Question/answer pairs written by Claude (anthropic SDK), as in the original project: every
response cached on disk, retries with backoff, every pair checked to be a span of its context.

Taught in: notebooks/04_tokenizers.ipynb (the QA set is read in notebooks/03_corpus.ipynb)
"""

import hashlib
import json
import os
import re
import time
from collections import Counter
from pathlib import Path

from spike_lib.core.atomic import write_json
from spike_lib.data.qa import make_record

DEFAULT_MODEL = "claude-sonnet-4-5"
MODEL_ENV = "SPIKE_CLAUDE_MODEL"  # overrides the model; the key comes from ANTHROPIC_API_KEY
KEY_ENV = "ANTHROPIC_API_KEY"
DEFAULT_CACHE = Path.home() / ".cache" / "spike_lib" / "claude"
RETRY_STATUS = (408, 409, 429, 500, 502, 503, 504, 529)

PROMPT = """Write {n} question/answer pairs about the text below, for a reading-comprehension
test. Every answer must be a short span copied exactly, character for character, from the
text (a name, number, date or short phrase), never a paraphrase.
Reply with JSON only: a list of objects {{"question": "...", "answer": "..."}}.

Text:
{context}"""


def mock_client(handler):
    """An anthropic.Anthropic client answered offline by handler(request) -> httpx2.Response,
    through the SDK's own HTTP stack (for tests and demonstrations: no key, no network)."""
    import anthropic
    import httpx2

    transport = httpx2.MockTransport(handler)
    return anthropic.Anthropic(api_key="offline-mock-key", max_retries=0,
                               http_client=httpx2.Client(transport=transport))


def message_response(text: str, status=200, headers=None):
    """An httpx2.Response shaped like the Messages API: a reply with `text`, or an error."""
    import httpx2

    if status == 200:
        body = {"id": "msg_mock", "type": "message", "role": "assistant", "model": "mock",
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}
    else:
        body = {"type": "error", "error": {"type": "api_error", "message": text or "error"}}
    return httpx2.Response(status, json=body, headers=headers or {})


def split_sections(text: str, n_sections=5) -> list:
    """Cut an article into about n_sections parts of similar length at paragraph breaks."""
    paras = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    if not paras:
        return []
    target = sum(len(p) for p in paras) / n_sections
    sections, cur = [], []
    for p in paras:
        cur.append(p)
        if sum(len(c) for c in cur) >= target and len(sections) < n_sections - 1:
            sections.append("\n\n".join(cur))
            cur = []
    if cur:
        sections.append("\n\n".join(cur))
    return sections


def parse_pairs(text: str):
    """[(question, answer)] from a reply (a JSON list, optionally inside ``` fences);
    None when the reply is not that shape."""
    m = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    body = m.group(1) if m else text
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return None
    if isinstance(data, dict) and isinstance(data.get("pairs"), list):
        data = data["pairs"]
    if not isinstance(data, list):
        return None
    out = []
    for item in data:
        if not isinstance(item, dict):
            return None
        q, a = item.get("question"), item.get("answer")
        if not isinstance(q, str) or not isinstance(a, str) or not q.strip() or not a.strip():
            return None
        out.append((q.strip(), a.strip()))
    return out


class ClaudeQA:
    """Generate extractive pairs with Claude. Responses are cached in cache_dir under
    sha256(model + prompt) (the API key is never part of a key, a file or a message), so an
    interrupted run resumes without repeating calls. Rate limits (429), overload (529), server
    errors (5xx) and connection errors are retried with exponential backoff
    delay = base_delay * 2**attempt (or the server's retry-after), through the injectable
    `sleep`. A reply that is not JSON, or a pair whose answer is not in its context, is skipped
    and counted in `stats`.
    """

    def __init__(self, client=None, model=None, cache_dir=DEFAULT_CACHE, max_attempts=5,
                 base_delay=1.0, sleep=time.sleep, max_tokens=1024):
        self.model = model or os.environ.get(MODEL_ENV) or DEFAULT_MODEL
        if client is None:
            import anthropic

            if not os.environ.get(KEY_ENV):
                raise ValueError(f"set the environment variable {KEY_ENV} to call Claude "
                                 "(or pass client=); the offline QA set needs no key")
            client = anthropic.Anthropic(max_retries=0)  # retries are ours, with our sleep
        self.client = client
        self.cache_dir = Path(cache_dir)
        self.max_attempts, self.base_delay, self.sleep = max_attempts, base_delay, sleep
        self.max_tokens = max_tokens
        self.stats = Counter()

    def __repr__(self) -> str:
        return f"ClaudeQA(model={self.model!r}, cache_dir={str(self.cache_dir)!r})"

    def cache_path(self, prompt: str) -> Path:
        key = hashlib.sha256(f"{self.model}\n{prompt}".encode()).hexdigest()
        return self.cache_dir / f"{key}.json"

    def complete(self, prompt: str):
        """The reply text for prompt: from the cache, else from the API (then cached).
        None if the request still fails after max_attempts."""
        path = self.cache_path(prompt)
        if path.is_file():
            self.stats["cache_hits"] += 1
            return json.loads(path.read_text(encoding="utf-8"))["text"]
        text = self._call(prompt)
        if text is not None:
            self._write_cache(path, {"model": self.model, "prompt": prompt, "text": text})
        return text

    def _write_cache(self, path: Path, data: dict) -> None:
        write_json(path, data, indent=None, sort_keys=False, ensure_ascii=False)

    def _call(self, prompt: str):
        import anthropic

        for attempt in range(self.max_attempts):
            try:
                self.stats["requests"] += 1
                reply = self.client.messages.create(
                    model=self.model, max_tokens=self.max_tokens,
                    messages=[{"role": "user", "content": prompt}])
                return "".join(b.text for b in reply.content if b.type == "text")
            except anthropic.APIStatusError as err:
                if err.status_code not in RETRY_STATUS:
                    raise ValueError(f"Claude refused the request: HTTP {err.status_code} "
                                     f"({type(err).__name__}); check the model name and "
                                     f"{KEY_ENV}") from None
                wait = self._retry_after(err.response) or self.base_delay * 2**attempt
            except anthropic.APIConnectionError:  # includes timeouts
                wait = self.base_delay * 2**attempt
            if attempt + 1 < self.max_attempts:
                self.stats["retries"] += 1
                self.sleep(wait)
        self.stats["failed_requests"] += 1
        return None

    @staticmethod
    def _retry_after(response):
        try:
            return max(0.0, float(response.headers.get("retry-after")))
        except (TypeError, ValueError):
            return None

    def section_pairs(self, context: str, n_pairs=3) -> list:
        """[(question, answer, answer_start)] for one context; bad replies/pairs are counted."""
        text = self.complete(PROMPT.format(n=n_pairs, context=context))
        if text is None:
            return []
        pairs = parse_pairs(text)
        if pairs is None:
            self.stats["malformed"] += 1
            return []
        out = []
        for q, a in pairs:
            start = context.find(a)
            if start < 0:
                self.stats["not_span"] += 1
                continue
            out.append((q, a, start))
        self.stats["pairs"] += len(out)
        return out

    def generate(self, articles, n_sections=5, n_pairs=3) -> list:
        """Records (spike_lib.data.qa format) for articles [{"title", "text", "category"}]: each
        article cut into n_sections sections, n_pairs asked per section."""
        records = []
        for art in articles:
            slug = re.sub(r"[^a-z0-9]+", "-", f"{art['category']} {art['title']}".lower())
            for k, context in enumerate(split_sections(art["text"], n_sections)):
                for j, (q, a, start) in enumerate(self.section_pairs(context, n_pairs)):
                    records.append(make_record(
                        f"claude-{slug.strip('-')}-s{k}-{j}", context, q, a, start,
                        art["category"], art["title"], f"section {k + 1}"))
        return records
