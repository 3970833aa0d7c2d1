"""Fuzz the reward server from its own OpenAPI spec: no request may get a 5xx.

Schemathesis generates valid and invalid bodies for every operation in /openapi.json
and sends them to the ASGI app in-process (no socket, no model: the scorer is a stub).
Runs are derandomized so CI sees the same examples every time. Schemathesis never sends
lone surrogates ("\\ud800"); test_serve.py's bad-request cases cover those.

    pytest tests/integration/test_serve_fuzz.py
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import settings  # noqa: E402  (after the importorskip)
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    response_schema_conformance,
    status_code_conformance,
)

from salmon.serve import ChatMarkers, ServeConfig, create_app  # noqa: E402

TOKEN = "s3cret"
# SmolLM2's ChatML markers, written out so no tokenizer has to be built.
MARKERS = ChatMarkers(
    user_open="<|im_start|>user\n",
    user_close="<|im_end|>",
    assistant="<|im_end|>\n<|im_start|>assistant\n",
    specials=("<|im_start|>", "<|im_end|>", "<|endoftext|>"),
)
# Small limits so generated bodies reach the 413 paths too.
CONFIG = ServeConfig(max_items=8, max_chars=40, max_principles=4, max_batch_size=8, batch_wait_ms=1)
FUZZ = settings(max_examples=50, deadline=None, derandomize=True, database=None)


def stub_scorer(prompts, responses, principles):
    """No model; but like a tokenizer it fails on text that is not valid Unicode."""
    texts = [m["content"] for p in prompts for m in ([{"content": p}] if isinstance(p, str) else p)]
    for text in (*texts, *responses, *(t for ps in principles for t in ps)):
        text.encode("utf-8")
    return [float(len(r) % 7) for r in responses]


def app_schema(token: str | None):
    app = create_app(stub_scorer, CONFIG, MARKERS, ["The response is helpful."], token=token)
    # With a token, /openapi.json itself needs the header.
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return schemathesis.openapi.from_asgi("/openapi.json", app, headers=headers)


# Loaded at import: parametrize() needs the operations at collection time, and the lazy
# `schemathesis.pytest.from_fixture` breaks on pytest 9 (it sets `Function._nodeid`).
open_schema = app_schema(None)  # valid and invalid bodies: most stop at validation
valid_schema = app_schema(None)  # valid bodies only, so more of them reach the scorer
valid_schema.config.generation.update(modes=[schemathesis.GenerationMode.POSITIVE])
token_schema = app_schema(TOKEN)


def _prompts_prefix_their_queries(context, body):
    """Random queries almost never start with their prompts, so /get_reward would stop at
    the split; make valid-looking bodies splittable so the scoring path is fuzzed too."""
    if context.operation.path != "/get_reward" or not isinstance(body, dict):
        return body
    query, prompts = body.get("query"), body.get("prompts")
    if not (isinstance(query, list) and all(isinstance(q, str) for q in query)):
        return body
    if prompts is None:  # split at the assistant header instead
        return {**body, "query": [MARKERS.user_open + q + MARKERS.assistant + q for q in query]}
    if (
        isinstance(prompts, list)
        and len(prompts) == len(query)
        and all(isinstance(p, str) for p in prompts)
    ):
        return {**body, "query": [p + q for p, q in zip(prompts, query)]}
    return body


for _schema in (open_schema, valid_schema, token_schema):
    _schema.hook("map_body")(_prompts_prefix_their_queries)


@open_schema.parametrize()
@FUZZ
def test_malformed_requests_get_4xx(case):
    case.call_and_validate(checks=[not_a_server_error, status_code_conformance, response_schema_conformance])


@valid_schema.parametrize()
@FUZZ
def test_valid_requests_get_no_server_error(case):
    case.call_and_validate(checks=[not_a_server_error, status_code_conformance, response_schema_conformance])


@token_schema.parametrize()
@settings(FUZZ, max_examples=10)
def test_token_is_checked_before_the_body(case):
    anonymous = case.call()
    if case.path == "/health":  # open, so the load balancer can probe it
        assert anonymous.status_code != 401
    else:
        assert anonymous.status_code == 401, anonymous.text
        assert anonymous.json()["error"].startswith("missing or wrong token")
    case.call_and_validate(
        headers={"Authorization": f"Bearer {TOKEN}"}, checks=[not_a_server_error]
    )
