"""CTranslate2 backend: batched decoding in C++ on CPU (or CUDA), several times faster
than transformers on a CPU for the embedded model (`salmon bench generate`).

A model is converted once from its local Hugging Face folder (safetensors) and cached
under `<salmon cache>/ct2/<digest>`, keyed by the sha256 of the source's weight and
config files; the conversion keeps float32 weights and quantisation (`--dtype int8`)
happens at load time. A LoRA adapter is merged into its base in a temporary folder and
that is converted, cached under the digest of base and adapter together.

Sampling is reproducible for a given seed (a sampled batch gets a freshly seeded
generator, which costs one model load from the page cache per batch), but the same seed draws different samples than transformers does; greedy output
in float32 matches transformers except where two logits tie within rounding.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from salmon.backends.base import SamplingParams, eos_ids, finish_sample, generation_config
from salmon.chat import has_chat_template, stop_strings
from salmon.errors import SalmonError

MARKER = "salmon-ct2.json"
COMPUTE_TYPES = ("float32", "int8", "int8_float32", "int16", "bfloat16", "float16", "int8_float16",
                 "int8_bfloat16")
DIGEST_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                "adapter_config.json")


def folder_digest(folder: Path) -> str:
    """sha256 over a model folder's weights (*.safetensors) and the config files that shape
    its conversion, with their names."""
    h = hashlib.sha256()
    files = sorted(folder.glob("*.safetensors")) + [folder / n for n in DIGEST_FILES if (folder / n).exists()]
    for f in files:
        h.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()


def _source(model: str, adapter: str | None) -> tuple[Path, Path | None]:
    """(base folder, adapter folder or None); refuses hub ids and non-safetensors folders."""
    from salmon.models import _adapter_base, is_peft_adapter, resolve_model

    path = Path(resolve_model(model))
    if path.exists() and is_peft_adapter(path):
        adapter, path = str(path), Path(_adapter_base(path))
    if not path.exists():
        raise SalmonError(f"--model {model}: the ct2 backend converts local folders only; "
                          "download the model first or use --backend hf")
    if not list(path.glob("*.safetensors")):
        raise SalmonError(f"{path}: no *.safetensors weights to convert; use --backend hf")
    if adapter and not Path(adapter).exists():
        raise SalmonError(f"--adapter {adapter}: folder not found")
    return path, Path(adapter) if adapter else None


def converted_model(model: str, adapter: str | None = None, trust_remote_code: bool = False) -> Path:
    """The cached CTranslate2 folder for a model (+ adapter), converting it on first use."""
    from salmon.models import cache_dir
    from salmon.progress import info

    base, lora = _source(model, adapter)
    digest = folder_digest(base)
    if lora is not None:
        digest = hashlib.sha256((digest + folder_digest(lora)).encode()).hexdigest()
    target = cache_dir() / "ct2" / digest[:32]
    if (target / MARKER).exists():
        return target
    info(f"converting {base.name}{' + adapter ' + lora.name if lora else ''} to CTranslate2 (once; cached in {target})")
    tmp = target.with_name(f".{target.name}.tmp.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        source = _merge_adapter(base, lora, tmp.with_name(tmp.name + ".merged")) if lora else base
        _convert(source, tmp, trust_remote_code)
        (tmp / MARKER).write_text(json.dumps({"source": str(base), "adapter": str(lora) if lora else None,
                                              "digest": digest}))
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished the same conversion first
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(tmp.with_name(tmp.name + ".merged"), ignore_errors=True)
    return target


def _merge_adapter(base: Path, adapter: Path, out: Path) -> Path:
    from salmon.models import load_causal_lm, load_tokenizer

    model = load_causal_lm(str(base), adapter=str(adapter), dtype="float32", device="cpu")
    model.merge_and_unload().save_pretrained(out, safe_serialization=True)
    load_tokenizer(str(base)).save_pretrained(out)
    return out


def _convert(source: Path, out: Path, trust_remote_code: bool) -> None:
    from ctranslate2.converters import TransformersConverter

    from salmon.models import quiet_transformers

    quiet_transformers()
    try:
        TransformersConverter(str(source), low_cpu_mem_usage=True,
                              trust_remote_code=trust_remote_code).convert(str(out), force=True)
        if (source / "generation_config.json").exists():  # EOS ids and sampling defaults
            shutil.copy(source / "generation_config.json", out / "generation_config.json")
    except (NotImplementedError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SalmonError(f"{source}: CTranslate2 cannot convert this model ({first}); use --backend hf") from None


def compute_type(dtype: str, device: str) -> str:
    if dtype == "auto":
        return "float32" if device == "cpu" else "default"
    alias = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}.get(dtype, dtype)
    if alias not in COMPUTE_TYPES:
        raise SalmonError(f"--dtype {dtype}: the ct2 backend takes auto, {', '.join(COMPUTE_TYPES)}")
    return alias


class CT2Backend:
    name = "ct2"

    def __init__(self, model: str, *, adapter: str | None = None, dtype: str = "auto", device: str = "auto",
                 trust_remote_code: bool = False, tokenizer=None) -> None:
        import ctranslate2
        import torch

        from salmon.models import load_tokenizer

        self.device = ("cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu") if device == "auto" else device
        self.compute_type = compute_type(dtype, self.device)
        folder = converted_model(model, adapter, trust_remote_code)
        self.tokenizer = tokenizer or load_tokenizer(model, trust_remote_code)
        self._load = dict(model_path=str(folder), device=self.device, compute_type=self.compute_type,
                          intra_threads=torch.get_num_threads())
        try:
            self.generator = ctranslate2.Generator(**self._load)
        except (ValueError, RuntimeError) as e:
            raise SalmonError(f"--dtype {dtype} --device {self.device}: CTranslate2 cannot load the model "
                              f"({str(e).strip().splitlines()[0]}); try --dtype float32 or --backend hf") from None
        gen_cfg = generation_config(folder)
        self.eos = eos_ids(gen_cfg.get("eos_token_id"), self.tokenizer)
        self.top_k = int(gen_cfg.get("top_k", 50) or 0)  # as transformers samples; 0 = no top-k cut

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, add_special_tokens=not has_chat_template(self.tokenizer))["input_ids"]

    def generate(self, texts: list[str], params: SamplingParams) -> list[list[dict[str, Any]]]:
        import ctranslate2

        starts = [self.tokenizer.convert_ids_to_tokens(ids) for ids in self.token_ids(texts)]
        batch = [s for s in starts for _ in range(params.n)]
        sampling: dict[str, Any] = dict(sampling_topk=1)
        if params.temperature > 0:
            sampling = dict(sampling_topk=self.top_k, sampling_topp=params.top_p,
                            sampling_temperature=params.temperature)
            # CTranslate2 seeds each worker thread's generator once, when the thread starts;
            # a fresh Generator per batch makes a batch's samples depend on its seed alone.
            self.generator = None
            ctranslate2.set_random_seed(params.seed)
            self.generator = ctranslate2.Generator(**self._load)
        results = self.generator.generate_batch(batch, max_length=params.max_new_tokens, include_prompt_in_result=False,
                                                end_token=self.eos, return_end_token=True, **sampling)
        stops = list(params.stop) + stop_strings(self.tokenizer)
        flat = [finish_sample(self.tokenizer, r.sequences_ids[0], self.eos, stops) for r in results]
        return [flat[i * params.n:(i + 1) * params.n] for i in range(len(texts))]
