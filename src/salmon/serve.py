"""`salmon serve`: the instructable reward model over HTTP, for larger RL systems.

    salmon serve --rm runs/default/train_rm --port 5000 [--principles judge] [--token-file F]

Endpoints (OpenAPI at /docs and /openapi.json):
- `POST /get_reward`: OpenRLHF's remote reward-model protocol. Request
  `{"query": [prompt+response, ...], "prompts": [...], "labels": [...], "principles": [[str]]?}`;
  response `{"rewards": [...], "scores": [...], "extra_logs": {...}}`.
  A chat-formatted prompt is parsed back into its turns, so the RM reads the whole
  conversation (oldest turns dropped first when it does not fit; counted per sample in
  `extra_logs.rm_truncated_turns`).
- `POST /score`: `{"items": [{"prompt", "response", "principles"?}]}` -> `{"rewards": [...]}`;
  `prompt` is text or a list of chat messages.
- `GET /health`.
Concurrent requests are batched dynamically (one scoring thread; items queue until a batch
fills or `batch_wait_ms` passes). Malformed or oversized requests get a 4xx with a JSON
error. With `--token-file`, every endpoint but /health needs the token, sent either as
`Authorization: Bearer <token>` or in the URL's query string (`/get_reward?token=...`,
for OpenRLHF, whose client sends no headers of its own); access logs are off so URLs
with tokens are not written anywhere. Binds 127.0.0.1 unless `--host` says otherwise.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoint annotations at runtime.
import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salmon.config import opt
from salmon.conversation import Prompt, parse_prompt, prompt_chars
from salmon.errors import SalmonError
from salmon.serve_chat import BadRequest, ChatMarkers, parse_chat, split_query  # noqa: F401 - re-exported

Scorer = Callable[[list[Prompt], list[str], list[list[str]]], list[float]]
# Per item, what the RM had to shorten: {"truncated_turns": n, "truncated_texts": n}.
Truncation = Callable[[Prompt, str, list[str]], dict[str, int]]


@dataclass
class ServeConfig:
    rm: str = opt("rm", "Trained reward model folder")
    host: str = opt("127.0.0.1", "Address to bind (default: localhost only)")
    port: int = opt(5000, "Port")
    principles: str | None = opt("judge", "Default principles for requests that carry none (file or built-in name)")
    token_file: str | None = opt(None, "File holding a bearer token that clients must send")
    max_batch_size: int = opt(16, "Most items scored in one forward batch")
    batch_wait_ms: float = opt(5.0, "How long a batch waits to fill")
    max_items: int = opt(256, "Most items in one request")
    max_chars: int = opt(20_000, "Most characters in one text")
    max_principles: int = opt(16, "Most principles for one item")

    def validate(self) -> None:
        if not 0 < self.port < 65536:
            raise SalmonError(f"--port {self.port}: expected 1-65535")
        if self.max_batch_size < 1 or self.max_items < 1:
            raise SalmonError("--max-batch-size and --max-items must be at least 1")


def read_token(path: str | None) -> str | None:
    if not path:
        return None
    p = Path(path)
    try:
        token = p.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        raise SalmonError(f"--token-file {path}: cannot read it") from None
    if not token:
        raise SalmonError(f"--token-file {path}: the file is empty")
    return token


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Batcher:
    """Queue items from concurrent requests; score them in batches on one worker thread."""

    def __init__(self, scorer: Scorer, max_batch: int, wait_s: float):
        self.scorer, self.max_batch, self.wait_s = scorer, max_batch, wait_s
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None
        self.batches = 0

    async def start(self) -> None:
        self.queue = asyncio.Queue()
        self.task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()

    async def score(self, items: list[tuple[str, str, list[str]]]) -> list[float]:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in items]
        for item, fut in zip(items, futures):
            await self.queue.put((item, fut))
        return list(await asyncio.gather(*futures))

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            deadline = loop.time() + self.wait_s
            while len(batch) < self.max_batch:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), timeout))
                except asyncio.TimeoutError:
                    break
            try:
                await self._score_batch(loop, batch)
            except Exception:  # noqa: BLE001 - one bad item must not fail the others: score one by one
                for one in batch:
                    try:
                        await self._score_batch(loop, [one])
                    except Exception as e:  # noqa: BLE001 - reported to that request only
                        if not one[1].done():
                            one[1].set_exception(e)

    async def _score_batch(self, loop, batch) -> None:
        items = [b[0] for b in batch]
        scores = await loop.run_in_executor(None, self.scorer, [i[0] for i in items],
                                            [i[1] for i in items], [i[2] for i in items])
        self.batches += 1
        for (_, fut), s in zip(batch, scores):
            if not fut.done():
                fut.set_result(float(s))


def authorized(headers, query: str, token: str) -> bool:
    """Whether a request carries the token: `Authorization: Bearer <token>`, or `token=<token>`
    in the URL's query string (OpenRLHF's remote-RM client sends no headers of its own, so
    the token rides in `--remote_rm_url`). Compared in constant time; never logged."""
    from urllib.parse import parse_qs

    expected = token.encode()
    sent = headers.get("authorization", "")
    bearer = sent[len("Bearer "):] if sent.startswith("Bearer ") else ""
    in_url = parse_qs(query, keep_blank_values=True).get("token", [""])[-1]
    ok_header = secrets.compare_digest(bearer.encode(), expected)
    ok_url = secrets.compare_digest(in_url.encode(), expected)
    return ok_header or ok_url  # `token` is never empty (read_token refuses an empty file)


def create_app(scorer: Scorer, cfg: ServeConfig, markers: ChatMarkers, default_principles: list[str],
               token: str | None = None, truncation: Truncation | None = None):
    """The FastAPI app; `scorer(prompts, responses, principles) -> rewards` does the work,
    `truncation(prompt, response, principles)`, when given, says what the RM had to cut
    (reported per sample in `/get_reward`'s extra_logs)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from salmon.serve_schema import (
        ERRORS,
        HealthResponse,
        RewardRequest,
        RewardResponse,
        ScoreRequest,
        ScoreResponse,
    )

    batcher = Batcher(scorer, cfg.max_batch_size, cfg.batch_wait_ms / 1000)

    @asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="salmon instructable reward model", version="1", lifespan=lifespan)

    @app.exception_handler(BadRequest)
    async def _bad(request: Request, exc: BadRequest):
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):  # 404, 405, unparsable bodies
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(SalmonError)
    async def _unscorable(request: Request, exc: SalmonError):  # e.g. principles too long for the RM
        return JSONResponse({"error": str(exc)}, status_code=422)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception):  # a scorer failure on valid input
        return JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", []))
        return JSONResponse({"error": f"invalid request: {where}: {first.get('msg', 'malformed')}"}, status_code=422)

    @app.middleware("http")
    async def _auth(request: Request, call_next):
        if token and request.url.path not in ("/health",) and not authorized(request.headers, request.url.query, token):
            return JSONResponse({"error": "missing or wrong token (send 'Authorization: Bearer <token>' "
                                          "or '?token=<token>' in the URL)"}, status_code=401)
        return await call_next(request)

    def check_items(prompts: list[Prompt], responses: list[str], principles: list[list[str]]) -> None:
        if not prompts:
            raise BadRequest(400, "no samples in the request")
        if len(prompts) > cfg.max_items:
            raise BadRequest(413, f"{len(prompts)} samples; the limit is {cfg.max_items} per request")
        for i, (p, r, ps) in enumerate(zip(prompts, responses, principles)):
            try:
                p = parse_prompt(p, f"sample {i}")
            except SalmonError as e:
                raise BadRequest(400, str(e)) from None
            for what, n in (("prompt", prompt_chars(p)), ("response", len(r))):
                if n > cfg.max_chars:
                    raise BadRequest(413, f"sample {i}: {what} has {n} characters; the limit is {cfg.max_chars}")
            texts = [p] if isinstance(p, str) else [m["content"] for m in p]
            if not ps or len(ps) > cfg.max_principles:
                raise BadRequest(400, f"sample {i}: needs 1-{cfg.max_principles} principles, got {len(ps)}")
            for t in ps:
                if not isinstance(t, str) or not t.strip() or len(t) > cfg.max_chars:
                    raise BadRequest(400, f"sample {i}: principles must be non-empty texts under {cfg.max_chars} characters")
            # JSON may escape lone surrogates ("\ud800"); the tokenizer raises on them, which would
            # be a 500 for this request and for every request batched with it.
            if not all(_is_unicode(t) for t in (*texts, r, *ps)):
                raise BadRequest(400, f"sample {i}: text is not valid Unicode (an unpaired surrogate escape such as \\ud800)")

    async def run(prompts: list[Prompt], responses: list[str], principles: list[list[str]]) -> list[float]:
        check_items(prompts, responses, principles)
        return await batcher.score(list(zip(prompts, responses, principles)))

    def per_sample(given: list[list[str]] | None, n: int) -> list[list[str]]:
        if given is None:
            if not default_principles:
                raise BadRequest(400, "no principles in the request and the server has no default principles")
            return [default_principles] * n
        if len(given) != n:
            raise BadRequest(400, f"principles has {len(given)} lists for {n} samples")
        return given

    @app.get("/health", response_model=HealthResponse)
    async def health() -> dict[str, Any]:
        return {"status": "ok", "batches": batcher.batches}

    @app.post("/get_reward", response_model=RewardResponse, responses=ERRORS)
    async def get_reward(req: RewardRequest) -> dict[str, Any]:
        t0 = time.perf_counter()
        n = len(req.query)
        if req.prompts is not None and len(req.prompts) != n:
            raise BadRequest(400, f"prompts has {len(req.prompts)} items for {n} queries")
        if n > cfg.max_items:
            raise BadRequest(413, f"{n} samples; the limit is {cfg.max_items} per request")
        for i, q in enumerate(req.query):
            if len(q) > 2 * cfg.max_chars:
                raise BadRequest(413, f"sample {i}: query has {len(q)} characters; the limit is {2 * cfg.max_chars}")
        split = [split_query(q, req.prompts[i] if req.prompts else None, markers) for i, q in enumerate(req.query)]
        lists = per_sample(req.principles, n)
        rewards = await run([s[0] for s in split], [s[1] for s in split], lists)
        logs = {"rm_latency_ms": [round(1000 * (time.perf_counter() - t0), 2)] * n,
                "rm_turns": [float(len(p) if isinstance(p, list) else 1) for p, _ in split]}
        if truncation is not None:
            cut = [truncation(p, r, ps) for (p, r), ps in zip(split, lists)]
            logs["rm_truncated_turns"] = [float(c.get("truncated_turns", 0)) for c in cut]
            logs["rm_truncated_texts"] = [float(c.get("truncated_texts", 0)) for c in cut]
        return {"rewards": rewards, "scores": rewards, "extra_logs": logs}

    @app.post("/score", response_model=ScoreResponse, responses=ERRORS)
    async def score(req: ScoreRequest) -> dict[str, Any]:
        items = req.items
        principles = per_sample([it.principles for it in items] if all(it.principles for it in items) else
                                [it.principles or default_principles for it in items], len(items))
        prompts = [it.prompt if isinstance(it.prompt, str) else [m.model_dump() for m in it.prompt] for it in items]
        rewards = await run(prompts, [it.response for it in items], principles)
        return {"rewards": rewards}

    return app


def rm_truncation(rm, prompt: Prompt, response: str, principles: list[str]) -> dict[str, int]:
    """What the RM cuts from one item to fit its max_length (tokenizer only, no model)."""
    from salmon.reward.template import encode_rm_parts

    stats: dict[str, int] = {}
    try:
        encode_rm_parts(rm.tokenizer, prompt, response, principles, rm.max_length, stats)
    except SalmonError:  # principles too long: scoring reports it
        pass
    return stats


def serve(cfg: ServeConfig) -> None:
    """Load the reward model and serve it until interrupted."""
    import socket

    import uvicorn

    from salmon.principles import load_principles
    from salmon.reward import InstructableRewardModel

    token = read_token(cfg.token_file)
    with socket.socket(socket.AF_INET6 if ":" in cfg.host else socket.AF_INET) as s:
        try:
            s.bind((cfg.host, cfg.port))
        except OSError as e:
            raise SalmonError(f"--host {cfg.host} --port {cfg.port}: cannot bind ({e.strerror})") from None
    defaults = [p.definition for p in load_principles(cfg.principles)] if cfg.principles else []
    rm = InstructableRewardModel.load(cfg.rm)
    if defaults:  # fail now, not on every request that relies on the defaults
        try:
            rm.score(["?"], ["."], [defaults])
        except SalmonError as e:
            raise SalmonError(f"--principles {cfg.principles}: {e}") from None
    app = create_app(rm.score, cfg, ChatMarkers.from_tokenizer(rm.tokenizer), defaults, token,
                     truncation=lambda p, r, ps: rm_truncation(rm, p, r, ps))
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning", access_log=False)  # URLs may hold the token
