"""`salmon serve`: the instructable reward model over HTTP, for larger RL systems.

    salmon serve --rm runs/default/train_rm --port 5000 [--principles judge] [--token-file F]

Endpoints (OpenAPI at /docs and /openapi.json):
- `POST /get_reward`: OpenRLHF's remote reward-model protocol. Request
  `{"query": [prompt+response, ...], "prompts": [...], "labels": [...], "principles": [[str]]?}`;
  response `{"rewards": [...], "scores": [...], "extra_logs": {...}}`.
- `POST /score`: `{"items": [{"prompt", "response", "principles"?}]}` -> `{"rewards": [...]}`.
- `GET /health`.
Concurrent requests are batched dynamically (one scoring thread; items queue until a batch
fills or `batch_wait_ms` passes). Malformed or oversized requests get a 4xx with a JSON
error. A bearer token is required when `--token-file` is given. Binds 127.0.0.1 unless
`--host` says otherwise.
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
from salmon.errors import SalmonError

Scorer = Callable[[list[str], list[str], list[list[str]]], list[float]]


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


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


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


@dataclass(frozen=True)
class ChatMarkers:
    """Where a user turn opens and closes and where the assistant turn starts, found by
    rendering a sentinel through the tokenizer's chat template."""

    user_open: str
    user_close: str
    assistant: str
    specials: tuple[str, ...]

    @classmethod
    def from_tokenizer(cls, tokenizer) -> "ChatMarkers":
        from salmon.chat import render_chat, special_token_strings

        specials = tuple(special_token_strings(tokenizer))
        sentinel = "\u2063SENTINEL\u2063"
        text = render_chat(tokenizer, [{"role": "user", "content": sentinel}], clean=False)
        before, after = text.split(sentinel, 1)
        starts = [before.rfind(s) for s in specials if s in before]
        user_open = before[max(starts):] if starts else before.split("\n\n")[-1]
        firsts = [(after.find(s), s) for s in specials if s in after]
        user_close = min(firsts)[1] if firsts else after.split("\n")[0] or after
        return cls(user_open, user_close, after, specials)


def split_query(query: str, prompt: str | None, markers: ChatMarkers) -> tuple[str, str]:
    """(instruction, response) from OpenRLHF's query (prompt + response as one string).

    The prompt is normally a prefix of the query; when it is not (special tokens dropped
    or added by the trainer), the query is split after the last assistant header.
    Chat-formatted prompts are reduced to the text of their last user turn, and special
    tokens (end of turn, padding) are stripped from the response.
    """
    specials = markers.specials
    if prompt is not None and query.startswith(prompt):
        head, response = prompt, query[len(prompt):]
    elif prompt is not None and _strip(query, specials).startswith(_strip(prompt, specials)) and _strip(prompt, specials):
        head, response = prompt, _strip(query, specials)[len(_strip(prompt, specials)):]
    elif markers.assistant and markers.assistant in query:
        cut = query.rindex(markers.assistant) + len(markers.assistant)
        head, response = query[:cut], query[cut:]
    else:
        raise BadRequest(422, "cannot split query into prompt and response: the prompt is not a prefix of the query")
    return _last_user_turn(head, markers), _strip(response, specials).strip()


def _strip(text: str, specials: tuple[str, ...] | list[str]) -> str:
    for s in specials:
        text = text.replace(s, "")
    return text


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _last_user_turn(prompt: str, markers: ChatMarkers) -> str:
    """The user's text from a chat-formatted prompt, or the prompt itself if it is plain."""
    if markers.user_open and markers.user_open in prompt:
        prompt = prompt[prompt.rindex(markers.user_open) + len(markers.user_open):]
        if markers.user_close and markers.user_close in prompt:
            prompt = prompt[: prompt.index(markers.user_close)]
    return _strip(prompt, markers.specials).strip()


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


def create_app(scorer: Scorer, cfg: ServeConfig, markers: ChatMarkers, default_principles: list[str],
               token: str | None = None):
    """The FastAPI app; `scorer(prompts, responses, principles) -> rewards` does the work."""
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
        if token and request.url.path not in ("/health",):
            sent = request.headers.get("authorization", "")
            if not secrets.compare_digest(sent.encode(), f"Bearer {token}".encode()):
                return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401)
        return await call_next(request)

    def check_items(prompts: list[str], responses: list[str], principles: list[list[str]]) -> None:
        if not prompts:
            raise BadRequest(400, "no samples in the request")
        if len(prompts) > cfg.max_items:
            raise BadRequest(413, f"{len(prompts)} samples; the limit is {cfg.max_items} per request")
        for i, (p, r, ps) in enumerate(zip(prompts, responses, principles)):
            for what, text in (("prompt", p), ("response", r)):
                if len(text) > cfg.max_chars:
                    raise BadRequest(413, f"sample {i}: {what} has {len(text)} characters; the limit is {cfg.max_chars}")
            if not p.strip():
                raise BadRequest(400, f"sample {i}: empty prompt")
            if not ps or len(ps) > cfg.max_principles:
                raise BadRequest(400, f"sample {i}: needs 1-{cfg.max_principles} principles, got {len(ps)}")
            for t in ps:
                if not isinstance(t, str) or not t.strip() or len(t) > cfg.max_chars:
                    raise BadRequest(400, f"sample {i}: principles must be non-empty texts under {cfg.max_chars} characters")
            # JSON may escape lone surrogates ("\ud800"); the tokenizer raises on them, which would
            # be a 500 for this request and for every request batched with it.
            if not all(_is_unicode(t) for t in (p, r, *ps)):
                raise BadRequest(400, f"sample {i}: text is not valid Unicode (an unpaired surrogate escape such as \\ud800)")

    async def run(prompts: list[str], responses: list[str], principles: list[list[str]]) -> list[float]:
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
        rewards = await run([s[0] for s in split], [s[1] for s in split], per_sample(req.principles, n))
        return {"rewards": rewards, "scores": rewards,
                "extra_logs": {"rm_latency_ms": [round(1000 * (time.perf_counter() - t0), 2)] * n}}

    @app.post("/score", response_model=ScoreResponse, responses=ERRORS)
    async def score(req: ScoreRequest) -> dict[str, Any]:
        items = req.items
        principles = per_sample([it.principles for it in items] if all(it.principles for it in items) else
                                [it.principles or default_principles for it in items], len(items))
        rewards = await run([it.prompt for it in items], [it.response for it in items], principles)
        return {"rewards": rewards}

    return app


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
    app = create_app(rm.score, cfg, ChatMarkers.from_tokenizer(rm.tokenizer), defaults, token)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning")
