"""Claude QA generation through the SDK's own HTTP stack with a mock transport (no network)."""

import json

import anthropic
import httpx2
import pytest

from spike_lib.data.qa import record_problem
from spike_lib.data.qa_claude import ClaudeQA, parse_pairs, split_sections

KEY = "sk-ant-test-key-never-stored"
CONTEXT = "Nairobi is the capital of Kenya. Kenya became independent on 12 December 1963."


def reply(text, status=200, headers=None):
    body = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
            "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 10}}
    if status != 200:
        body = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    return httpx2.Response(status, json=body, headers=headers or {})


GOOD = json.dumps([{"question": "What is the capital of Kenya?", "answer": "Nairobi"},
                   {"question": "When did Kenya become independent?",
                    "answer": "12 December 1963"}])


def make(tmp_path, responses, **kw):
    """A ClaudeQA whose HTTP calls are answered in order by `responses`; records requests."""
    seen, sleeps = [], []

    def handler(request):
        seen.append(request)
        return responses[min(len(seen), len(responses)) - 1]

    client = anthropic.Anthropic(api_key=KEY, max_retries=0,
                                 http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))
    qa = ClaudeQA(client=client, model="claude-test", cache_dir=tmp_path / "cache",
                  sleep=sleeps.append, base_delay=0.5, **kw)
    return qa, seen, sleeps


def test_good_reply_gives_valid_spans_and_is_cached(tmp_path):
    qa, seen, _ = make(tmp_path, [reply(GOOD)])
    pairs = qa.section_pairs(CONTEXT, n_pairs=2)
    assert pairs == [("What is the capital of Kenya?", "Nairobi", 0),
                     ("When did Kenya become independent?", "12 December 1963", 61)]
    assert len(seen) == 1
    body = json.loads(seen[0].content)
    assert body["model"] == "claude-test" and CONTEXT in body["messages"][0]["content"]
    # the second run reads the cache: no new request, same pairs
    qa2, seen2, _ = make(tmp_path, [reply("not used")])
    assert qa2.section_pairs(CONTEXT, n_pairs=2) == pairs
    assert len(seen2) == 0 and qa2.stats["cache_hits"] == 1


def test_key_never_in_cache_or_repr(tmp_path):
    qa, seen, _ = make(tmp_path, [reply(GOOD)])
    qa.section_pairs(CONTEXT)
    assert KEY in seen[0].headers["authorization"]  # the SDK did send it ...
    files = list((tmp_path / "cache").iterdir())
    assert len(files) == 1 and files[0].suffix == ".json"
    assert KEY not in files[0].read_text() and KEY not in files[0].name  # ... we never store it
    assert KEY not in repr(qa)


def test_429_then_success_retries_with_backoff(tmp_path):
    qa, seen, sleeps = make(tmp_path, [reply("", 429), reply("", 429, {"retry-after": "3"}),
                                       reply(GOOD)])
    assert len(qa.section_pairs(CONTEXT)) == 2
    assert len(seen) == 3
    assert sleeps == [0.5, 3.0]  # base_delay * 2**0, then the server's retry-after
    assert qa.stats["retries"] == 2 and qa.stats["failed_requests"] == 0


def test_500s_give_up_after_max_attempts_without_crash(tmp_path):
    qa, seen, sleeps = make(tmp_path, [reply("", 500)], max_attempts=4)
    assert qa.section_pairs(CONTEXT) == []
    assert len(seen) == 4 and sleeps == [0.5, 1.0, 2.0]
    assert qa.stats["failed_requests"] == 1
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_auth_error_is_not_retried(tmp_path):
    qa, seen, _ = make(tmp_path, [reply("", 401)])
    with pytest.raises(ValueError, match="HTTP 401"):
        qa.section_pairs(CONTEXT)
    assert len(seen) == 1


def test_malformed_and_non_span_answers_are_skipped_and_counted(tmp_path):
    bad_span = json.dumps([{"question": "Capital?", "answer": "Nairobi"},
                           {"question": "Largest lake?", "answer": "Lake Victoria"}])
    qa, _, _ = make(tmp_path, [reply("Sure! Here are some pairs: ...")])
    assert qa.section_pairs(CONTEXT) == [] and qa.stats["malformed"] == 1
    qa, _, _ = make(tmp_path / "b", [reply("```json\n" + bad_span + "\n```")])
    assert qa.section_pairs(CONTEXT) == [("Capital?", "Nairobi", 0)]
    assert qa.stats["not_span"] == 1 and qa.stats["pairs"] == 1


def test_generate_makes_valid_records(tmp_path):
    qa, seen, _ = make(tmp_path, [reply(GOOD)])
    article = {"title": "Kenya", "category": "geography", "text": CONTEXT}
    recs = qa.generate([article], n_sections=5, n_pairs=2)
    assert len(seen) == 1 and len(recs) == 2  # one paragraph -> one section
    assert all(record_problem(r) == "" for r in recs)
    assert recs[1]["id"] == "claude-geography-kenya-s0-1" and recs[1]["section"] == "section 1"


def test_mock_client_helpers(tmp_path):
    from spike_lib.data.qa_claude import message_response, mock_client

    calls = []

    def handler(request):
        calls.append(request)
        return message_response("", 529) if len(calls) == 1 else message_response(GOOD)

    sleeps = []
    qa = ClaudeQA(client=mock_client(handler), model="m", cache_dir=tmp_path, sleep=sleeps.append)
    assert [p[1] for p in qa.section_pairs(CONTEXT)] == ["Nairobi", "12 December 1963"]
    assert len(calls) == 2 and sleeps == [1.0]  # 529 (overloaded) is retried after base_delay


def test_parse_pairs_shapes():
    assert parse_pairs('{"pairs": [{"question": "Q?", "answer": "A"}]}') == [("Q?", "A")]
    assert parse_pairs('[{"question": "Q?"}]') is None
    assert parse_pairs('[{"question": "Q?", "answer": ""}]') is None
    assert parse_pairs("{}") is None


def test_split_sections_balances_paragraphs():
    text = "\n\n".join(["a" * 10] * 10)
    parts = split_sections(text, 5)
    assert len(parts) == 5 and all(p.count("a") == 20 for p in parts)
    assert split_sections("", 5) == []


def test_missing_key_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ValueError, match="ANTHROPIC_API_KEY"):
        ClaudeQA(cache_dir=tmp_path)


def test_model_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SPIKE_CLAUDE_MODEL", "claude-from-env")
    qa, _seen, _ = make(tmp_path, [reply(GOOD)])
    assert qa.model == "claude-test"  # an explicit argument wins
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    assert ClaudeQA(cache_dir=tmp_path).model == "claude-from-env"


def test_failed_run_keeps_earlier_output_and_fails(tmp_path):
    from spike_lib.data.qa import save_claude_records

    out = tmp_path / "claude_train.jsonl"
    out.write_text("earlier output\n")
    qa, seen, _ = make(tmp_path, [reply("", 500)], max_attempts=3)
    recs = qa.generate([{"title": "Kenya", "text": CONTEXT, "category": "geography"}], n_sections=2)
    assert recs == [] and qa.stats["failed_requests"] >= 1
    with pytest.raises(ValueError, match=r"requests failed .* was left unchanged"):
        save_claude_records(qa.stats, recs, out)
    assert out.read_text() == "earlier output\n"
    assert not (tmp_path / "claude_train.jsonl.partial").exists()


def test_partly_failed_run_sets_its_records_aside(tmp_path):
    from spike_lib.data.qa import save_claude_records

    out = tmp_path / "claude_train.jsonl"
    out.write_text("earlier output\n")
    qa, _, _ = make(tmp_path, [reply(GOOD)])
    recs = qa.generate([{"title": "Kenya", "text": CONTEXT, "category": "geography"}], n_sections=1)
    assert len(recs) == 2
    stats = {**qa.stats, "failed_requests": 1}
    with pytest.raises(ValueError, match=r"1 of 1 requests failed .*; the 2 records made were written"):
        save_claude_records(stats, recs, out)
    assert out.read_text() == "earlier output\n"
    assert len((tmp_path / "claude_train.jsonl.partial").read_text().splitlines()) == 2
    assert save_claude_records(qa.stats, recs, out)["records"] == 2
    assert len(out.read_text().splitlines()) == 2
