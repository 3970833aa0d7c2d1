"""Generation backends: one interface (`base.Backend`) over transformers (`hf`, the
reference), CTranslate2 (`ct2`, fast on CPU) and vLLM (`vllm`, GPU, untested)."""

from salmon.backends.base import BACKEND_HELP, BACKEND_NAMES, Backend, SamplingParams
from salmon.backends.load import load_backend, resolve_backend, sample_texts

__all__ = ["BACKEND_HELP", "BACKEND_NAMES", "Backend", "SamplingParams", "load_backend", "resolve_backend",
           "sample_texts"]
