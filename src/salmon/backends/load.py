"""Choosing and loading a generation backend by name (kept apart from `base`, which the
backends themselves import)."""

from __future__ import annotations

import importlib.util
from typing import Any

from salmon.backends.base import BACKEND_NAMES, Backend, SamplingParams
from salmon.errors import SalmonError


def available(name: str) -> bool:
    module = {"ct2": "ctranslate2", "vllm": "vllm"}.get(name)
    return module is None or importlib.util.find_spec(module) is not None


def resolve_backend(name: str, device: str = "auto") -> str:
    """`auto` -> ct2 when CTranslate2 is installed (its fp32 greedy output matches hf's, see
    `salmon bench generate`), else hf; an explicit name must be installed."""
    if name not in BACKEND_NAMES:
        raise SalmonError(f"--backend {name}: expected one of {', '.join(BACKEND_NAMES)}")
    if name == "auto":
        return "ct2" if available("ct2") else "hf"
    if not available(name):
        pkg = {"ct2": "ctranslate2", "vllm": "vllm"}[name]
        raise SalmonError(f"--backend {name}: the '{pkg}' package is not installed "
                          f"(pip install {pkg}, or use --backend hf)")
    return name


def load_backend(name: str, model: str, *, adapter: str | None = None, dtype: str = "auto",
                 device: str = "auto", trust_remote_code: bool = False, tokenizer=None) -> Backend:
    """Build the named backend for a model spec (`default`, `tiny`, a folder or a hub id)."""
    resolved = resolve_backend(name, device)
    kw = dict(adapter=adapter, dtype=dtype, device=device, trust_remote_code=trust_remote_code, tokenizer=tokenizer)
    if resolved == "hf":
        from salmon.backends.hf import HFBackend

        return HFBackend(model, **kw)
    if resolved == "vllm":
        from salmon.backends.vllm import VLLMBackend

        return VLLMBackend(model, **kw)
    from salmon.backends.ct2 import CT2Backend

    try:
        return CT2Backend(model, **kw)
    except SalmonError as e:
        if name != "auto":
            raise
        from salmon.backends.hf import HFBackend
        from salmon.progress import info

        info(f"backend auto: ct2 is not usable here ({e}); using hf")
        return HFBackend(model, **kw)


def sample_texts(texts: list[str], params: SamplingParams, *, model: str = "default", backend: str = "auto",
                 **load_kw: Any) -> list[list[dict[str, Any]]]:
    """One call for stages that sample once (e.g. evaluation answers): load, generate."""
    return load_backend(backend, model, **load_kw).generate(texts, params)
