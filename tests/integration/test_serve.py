"""The reward server over real HTTP on loopback: OpenRLHF's protocol, batching, limits, auth."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest

from salmon.serve import ChatMarkers, ServeConfig, create_app


def fake_scorer(calls):
    def score(prompts, responses, principles):
        calls.append(len(prompts))
        time.sleep(0.01)
        return [len(r.split()) + 0.5 * len(ps) for r, ps in zip(responses, principles)]
    return score


class Server:
    def __init__(self, app):
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                break
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.server.should_exit = True
        self.thread.join(5)


@pytest.fixture(scope="module")
def markers():
    import tempfile

    from salmon.models import build_tiny_model, load_tokenizer

    with tempfile.TemporaryDirectory() as d:
        tok = load_tokenizer(str(build_tiny_model(d)))
        yield ChatMarkers.from_tokenizer(tok), tok


@pytest.fixture
def server(markers):
    calls: list[int] = []
    app = create_app(fake_scorer(calls), ServeConfig(max_items=8, max_chars=200, max_batch_size=16, batch_wait_ms=20),
                     markers[0], ["The response is helpful."], token=None)
    s = Server(app)
    s.calls = calls
    yield s
    s.stop()


def test_openrlhf_request(server, markers):
    from salmon.chat import user_prompt

    tok = markers[1]
    p1 = user_prompt(tok, "Name a colour.")
    p2 = "Plain prompt:"
    body = {"query": [p1 + "Blue is one.<|im_end|>", p2 + " three word answer"], "prompts": [p1, p2], "labels": ["", ""]}
    r = httpx.post(server.url + "/get_reward", json=body, timeout=10)
    assert r.status_code == 200, r.text
    data = r.json()
    # fake score = words in the cleaned response + 0.5 * number of principles (1 default)
    assert data["rewards"] == [3.5, 3.5] and data["scores"] == data["rewards"]
    assert "extra_logs" in data
    body["principles"] = [["a", "b"], ["c"]]
    assert httpx.post(server.url + "/get_reward", json=body, timeout=10).json()["rewards"] == [4.0, 3.5]


def test_score_endpoint_and_health(server):
    r = httpx.post(server.url + "/score", json={"items": [{"prompt": "q", "response": "one two", "principles": ["x"]}]})
    assert r.status_code == 200 and r.json() == {"rewards": [2.5]}
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    assert httpx.get(server.url + "/openapi.json").json()["paths"]["/get_reward"]


def test_concurrent_requests_are_batched(server):
    def one(i):
        httpx.post(server.url + "/score", json={"items": [{"prompt": "q", "response": f"w{i}"}]}, timeout=10)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(server.calls) == 16 and max(server.calls) > 1


@pytest.mark.parametrize("body,status,needle", [
    ({"query": "not a list"}, 422, "query"),
    ({"prompts": ["x"]}, 422, "query"),
    ({"query": ["a"], "prompts": ["a", "b"]}, 400, "prompts has 2 items"),
    ({"query": ["x" * 500], "prompts": ["x"]}, 413, "limit"),
    ({"query": ["q r"] * 9, "prompts": ["q"] * 9}, 413, "limit is 8"),
    ({"query": ["abc"], "prompts": ["zzz"]}, 422, "cannot split"),
    ({"query": ["q r"], "prompts": ["q"], "principles": [[]]}, 400, "principles"),
    ({"query": ["q r"], "prompts": ["q"], "principles": [["a"], ["b"]]}, 400, "2 lists for 1"),
    ({"query": [], "prompts": []}, 400, "no samples"),
    ({"query": ["{{x}} {% raw %} r"], "prompts": ["{{x}}"]}, 200, "rewards"),
    # lone surrogates are legal JSON escapes but make the tokenizer raise (a 500 for the whole batch)
    ({"query": ["q \ud800"], "prompts": ["q"]}, 400, "not valid Unicode"),
    ({"query": ["q r"], "prompts": ["q"], "principles": [["\udfff"]]}, 400, "not valid Unicode"),
])
def test_bad_requests_get_4xx_json(server, body, status, needle):
    # json.dumps, not httpx's json=: it escapes lone surrogates where httpx cannot encode them
    r = httpx.post(server.url + "/get_reward", content=json.dumps(body),
                   headers={"content-type": "application/json"}, timeout=10)
    assert r.status_code == status, r.text
    assert needle in r.text


def test_invalid_json_and_utf8(server):
    for raw in (b"{not json", b'{"query": ["\xff"]}'):
        r = httpx.post(server.url + "/get_reward", content=raw, headers={"content-type": "application/json"})
        assert 400 <= r.status_code < 500 and r.json()


def test_token_required(markers):
    app = create_app(fake_scorer([]), ServeConfig(), markers[0], ["p"], token="s3cret")
    s = Server(app)
    try:
        body = {"query": ["q r"], "prompts": ["q"]}
        assert httpx.post(s.url + "/get_reward", json=body).status_code == 401
        bad = httpx.post(s.url + "/get_reward", json=body, headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        ok = httpx.post(s.url + "/get_reward", json=body, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert httpx.get(s.url + "/health").status_code == 200
    finally:
        s.stop()


def test_defaults_bind_localhost_and_port_in_use_is_an_error(tmp_path):
    from salmon.errors import SalmonError
    from salmon.serve import read_token, serve

    assert ServeConfig().host == "127.0.0.1"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(SalmonError, match="cannot bind"):
            serve(ServeConfig(rm=str(tmp_path), port=port))
    (tmp_path / "t").write_text("  \n")
    with pytest.raises(SalmonError, match="empty"):
        read_token(str(tmp_path / "t"))


def test_a_scorer_failure_fails_only_its_own_request(markers):
    """One item that crashes the scorer gets a JSON 500; the requests batched with it are scored."""
    calls: list[int] = []
    tried: list[int] = []
    plain = fake_scorer(calls)

    def flaky(prompts, responses, principles):
        tried.append(len(prompts))
        if any("BOOM" in r for r in responses):
            raise RuntimeError("cannot score BOOM")
        return plain(prompts, responses, principles)

    s = Server(create_app(flaky, ServeConfig(max_batch_size=16, batch_wait_ms=50), markers[0], ["p"]))
    try:
        results: dict[str, httpx.Response] = {}

        def one(text):
            results[text] = httpx.post(s.url + "/score", json={"items": [{"prompt": "q", "response": text}]},
                                       timeout=10)

        threads = [threading.Thread(target=one, args=(t,)) for t in ("a b", "BOOM", "c d e", "f")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results["BOOM"].status_code == 500 and "cannot score BOOM" in results["BOOM"].json()["error"]
        assert [results[t].json()["rewards"] for t in ("a b", "c d e", "f")] == [[2.5], [3.5], [1.5]]
        assert max(tried) > 1  # they really were batched together first
        wrong = httpx.get(s.url + "/get_reward")  # framework errors have the same JSON shape
        assert wrong.status_code == 405 and "error" in wrong.json()
    finally:
        s.stop()


def test_unscorable_requests_are_4xx_and_too_long_default_principles_fail_at_start(markers, tiny_model, tmp_path):
    from salmon.errors import SalmonError
    from salmon.rl.bench import make_untrained_rm
    from salmon.serve import serve

    def too_long(prompts, responses, principles):
        raise SalmonError("principles list is 900 tokens, too long for --max-length 512")

    s = Server(create_app(too_long, ServeConfig(), markers[0], ["p"]))
    try:
        r = httpx.post(s.url + "/score", json={"items": [{"prompt": "q", "response": "r"}]}, timeout=10)
        assert r.status_code == 422 and "too long" in r.json()["error"]
    finally:
        s.stop()

    rm = make_untrained_rm(str(tiny_model), tmp_path / "rm", max_length=64)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with pytest.raises(SalmonError, match="--principles judge: principles list is"):
        serve(ServeConfig(rm=str(rm), port=port, principles="judge"))


def openrlhf_post(url: str, data: dict):
    """A request shaped exactly like OpenRLHF's remote-RM client (`request_api_wrapper`):
    `requests.post(url, json=data, headers={"Content-Type": "application/json"})`."""
    import requests

    return requests.post(url=url, json=data, headers={"Content-Type": "application/json"}, timeout=10)


def test_openrlhf_client_with_the_token_in_the_url(markers):
    from salmon.chat import user_prompt

    s = Server(create_app(fake_scorer([]), ServeConfig(), markers[0], ["p"], token="s3cret/+&="))
    try:
        prompt = user_prompt(markers[1], "Name a colour.")
        data = {"query": [prompt + "Blue is one.<|im_end|>"], "prompts": [prompt], "labels": [None]}
        from urllib.parse import quote

        ok = openrlhf_post(f"{s.url}/get_reward?token={quote('s3cret/+&=', safe='')}", data)
        assert ok.status_code == 200 and ok.json()["rewards"] == [3.5]
        for url in (f"{s.url}/get_reward", f"{s.url}/get_reward?token=wrong", f"{s.url}/get_reward?token=",
                    f"{s.url}/get_reward?tok=s3cret"):
            denied = openrlhf_post(url, data)
            assert denied.status_code == 401 and "s3cret" not in denied.text
        # the header still works, and /score takes the URL token too
        assert httpx.post(s.url + "/get_reward", json=data, headers={"Authorization": "Bearer s3cret/+&="}).status_code == 200
        r = httpx.post(f"{s.url}/score?token={quote('s3cret/+&=', safe='')}",
                       json={"items": [{"prompt": "q", "response": "a b"}]})
        assert r.status_code == 200
    finally:
        s.stop()


def test_authorized_compares_header_and_url():
    from salmon.serve import authorized

    assert authorized({"authorization": "Bearer t0k"}, "", "t0k")
    assert authorized({}, "a=1&token=t0k", "t0k")
    assert not authorized({"authorization": "Bearer t0"}, "token=t0", "t0k")
    assert not authorized({"authorization": "t0k"}, "", "t0k")  # the Bearer scheme is required
    assert not authorized({}, "token=", "t0k") and not authorized({}, "", "t0k")


TALK = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "My cat is Pepper."},
        {"role": "assistant", "content": "Nice name."}, {"role": "user", "content": "What is my cat called?"}]


LLAMA3_STYLE = ("{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
                "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
                "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}")


@pytest.mark.parametrize("template", ["chatml", "plain", "llama3"])
def test_chat_formatted_prompts_parse_back_into_turns(template):
    from transformers import AutoTokenizer

    from salmon.chat import render_chat, user_prompt
    from salmon.models import builtin_tokenizer_dir
    from salmon.serve import parse_chat, split_query

    tok = AutoTokenizer.from_pretrained(builtin_tokenizer_dir())  # SmolLM2's: ChatML
    if template == "plain":
        tok.chat_template = None
    elif template == "llama3":  # header tokens as special tokens, as in Llama 3's tokenizer
        tok.add_special_tokens({"additional_special_tokens": [
            "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|begin_of_text|>"]})
        tok.bos_token, tok.chat_template = "<|begin_of_text|>", LLAMA3_STYLE
    markers = ChatMarkers.from_tokenizer(tok)
    text = render_chat(tok, TALK)
    assert parse_chat(text, markers) == TALK
    # without a system turn (SmolLM2's template then adds its default one, kept as a system turn)
    assert parse_chat(render_chat(tok, TALK[1:]), markers)[-3:] == TALK[1:]
    prompt, response = split_query(text + "Pepper.<|im_end|>", text, markers)
    assert prompt == TALK and response == "Pepper."
    single = parse_chat(user_prompt(tok, "Hi there"), markers)
    assert single == "Hi there" or single[-1] == {"role": "user", "content": "Hi there"}
    assert parse_chat("no markers at all", markers) == "no markers at all"


def test_whole_conversation_reaches_the_scorer_and_truncation_is_logged(markers):
    from salmon.chat import render_chat

    seen = []

    def scorer(prompts, responses, principles):
        seen.extend(prompts)
        return [0.0] * len(prompts)

    def truncation(prompt, response, principles):
        return {"truncated_turns": 2} if isinstance(prompt, list) and len(prompt) > 2 else {}

    s = Server(create_app(scorer, ServeConfig(), markers[0], ["p"], truncation=truncation))
    try:
        text = render_chat(markers[1], TALK)
        r = httpx.post(s.url + "/get_reward", json={"query": [text + "Pepper."], "prompts": [text]})
        assert r.status_code == 200, r.text
        assert seen == [TALK]
        logs = r.json()["extra_logs"]
        assert logs["rm_turns"] == [4.0] and logs["rm_truncated_turns"] == [2.0] and logs["rm_truncated_texts"] == [0.0]
        r = httpx.post(s.url + "/score", json={"items": [{"prompt": TALK, "response": "Pepper."}]})
        assert r.status_code == 200 and seen[-1] == TALK
        bad = httpx.post(s.url + "/score", json={"items": [{"prompt": TALK[:3], "response": "x"}]})
        assert bad.status_code == 400 and "last message must be a user turn" in bad.json()["error"]
    finally:
        s.stop()
