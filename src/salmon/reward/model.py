"""The instructable reward model: load a trained RM folder and score (prompt, response)
pairs under any list of principles written in plain text.

    from salmon.reward import InstructableRewardModel
    rm = InstructableRewardModel.load("rm/")
    rm.score(["How do I boil an egg?"], ["Boil it for 8 minutes."],
             [["Concise: The response is short and to the point."]])

An RM folder is a PEFT LoRA adapter on `AutoModelForSequenceClassification` (one score,
the head saved through `modules_to_save`) with `salmon_rm.json` beside it, or a fully
fine-tuned sequence-classification folder. Inputs are built by `reward.template`.

Scoring is batched with length bucketing (inputs sorted by length, right padding, the
score read at the last real token). When one (prompt, response) is scored under several
principle lists, its prefix is run once and its key/value cache reused for every list.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from salmon.conversation import Prompt
from salmon.errors import SalmonError
from salmon.padding import right_pad
from salmon.reward.contrastive import contrastive_score, is_contrastive
from salmon.reward.meta import META_FILE, read_meta
from salmon.reward.template import encode_rm_parts


@contextlib.contextmanager
def quiet_transformers():
    """Hide the expected "score.weight newly initialised" notice while loading a base."""
    from transformers.utils import logging as hf_logging

    old = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(old)


def load_seqcls(path: str, pad_token_id: int, dtype=None, trust_remote_code: bool = False):
    """`AutoModelForSequenceClassification` with one output, ready to pool on the last real
    token (`config.pad_token_id` set; inputs are right-padded)."""
    from transformers import AutoModelForSequenceClassification

    try:
        with quiet_transformers():
            model = AutoModelForSequenceClassification.from_pretrained(
                path, num_labels=1, dtype=dtype, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SalmonError(f"cannot load model '{path}' for sequence classification: {first}") from None
    model.config.pad_token_id = pad_token_id
    return model


def length_buckets(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first, so an out-of-memory
    error shows up at the start rather than at the end)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[s:s + batch_size] for s in range(0, len(order), batch_size)]


def _adapter_base(path: Path) -> str | None:
    return json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path")


class InstructableRewardModel:
    """A sequence-classification model that scores a response under written principles."""

    def __init__(self, model, tokenizer, meta: dict[str, Any]):
        self.model = model
        self.tokenizer = tokenizer
        self.meta = meta
        self.max_length = int(meta["max_length"])
        # What `score` had to shorten so far: "truncated_turns" (conversation messages
        # dropped, oldest first), "truncated_texts" (responses or last user turns cut).
        self.truncations: dict[str, int] = {}
        # an ensemble (`reward.ensemble`): (adapter name, weight) per member; empty for one model
        self.members: list[tuple[str, float]] = []

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", dtype: str = "auto",
             trust_remote_code: bool = False) -> InstructableRewardModel:
        from transformers import AutoTokenizer

        from salmon.models import is_peft_adapter, pick_device, pick_dtype, resolve_model

        path = Path(path)
        if not path.is_dir():
            raise SalmonError(f"--rm {path}: reward model folder not found")
        meta = read_meta(path)
        tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        dev = pick_device(device)
        dt = pick_dtype(dtype, dev)
        members: list[tuple[str, float]] = []
        if meta.get("ensemble"):
            from peft import PeftModel

            from salmon.reward.ensemble import ensemble_members

            folders = ensemble_members(path, meta)
            model = load_seqcls(resolve_model(meta["base_model"] or _adapter_base(folders[0][0])),
                                tok.pad_token_id, dt, trust_remote_code)
            for k, (folder, weight) in enumerate(folders):
                if k == 0:
                    model = PeftModel.from_pretrained(model, str(folder), adapter_name="member-0")
                else:
                    model.load_adapter(str(folder), adapter_name=f"member-{k}")
                members.append((f"member-{k}", weight))
        elif is_peft_adapter(path):
            from peft import PeftModel

            base = resolve_model(meta["base_model"] or _adapter_base(path))
            model = load_seqcls(base, tok.pad_token_id, dt, trust_remote_code)
            model = PeftModel.from_pretrained(model, str(path))
        else:
            model = load_seqcls(str(path), tok.pad_token_id, dt, trust_remote_code)
        model.to(dev)
        model.eval()
        rm = cls(model, tok, meta)
        rm.members = members
        return rm

    def save(self, out: str | Path) -> Path:
        """Write the RM folder: weights (adapter or full model), tokenizer, salmon_rm.json."""
        from salmon.jsonl import atomic_write_text

        if self.members:
            raise SalmonError(f"save: an ensemble is written by `salmon ensemble-rm`, not saved to {out}")

        out = Path(out)
        self.model.save_pretrained(str(out))
        self.tokenizer.save_pretrained(str(out))
        atomic_write_text(out / META_FILE, json.dumps(self.meta, indent=2) + "\n")
        return out

    @property
    def device(self):
        return next(self.model.parameters()).device

    def _core(self):
        """The transformers model itself (LoRA layers stay active inside it)."""
        get_base = getattr(self.model, "get_base_model", None)
        return get_base() if get_base else self.model

    @property
    def contrastive(self) -> bool:
        """Scores are raw(principles) - raw(their negation) (`reward.contrastive`)."""
        return is_contrastive(self.meta)

    def score(self, prompts: list[Prompt], responses: list[str], principles: list[list[str]],
              batch_size: int = 8, share_prefix: bool = True,
              negations: list[list[str]] | None = None) -> list[float]:
        """One reward per (prompt, response, principle list); a prompt is text or a
        conversation (a list of chat messages ending with a user turn). A contrastive RM
        subtracts the raw score under each list's negation (`negations`, else derived)."""
        if self.contrastive:
            def raw(p, r, ps):
                return self.raw_score(p, r, ps, batch_size, share_prefix)
            return contrastive_score(raw, prompts, responses, principles, negations)
        return self.raw_score(prompts, responses, principles, batch_size, share_prefix)

    def raw_score(self, prompts: list[Prompt], responses: list[str], principles: list[list[str]],
                  batch_size: int = 8, share_prefix: bool = True) -> list[float]:
        """The model's own score per (prompt, response, principle list), never contrasted."""
        if not len(prompts) == len(responses) == len(principles):
            raise SalmonError(f"score: got {len(prompts)} prompts, {len(responses)} responses and "
                              f"{len(principles)} principle lists; they must match")
        parts = [encode_rm_parts(self.tokenizer, p, r, ps, self.max_length, self.truncations)
                 for p, r, ps in zip(prompts, responses, principles, strict=True)]
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, (prefix, _) in enumerate(parts):
            groups[tuple(prefix)].append(i)
        out: list[float | None] = [None] * len(parts)
        single: list[int] = []
        for prefix, idx in groups.items():
            if share_prefix and len(idx) > 1 and prefix:
                for i, r in zip(idx, self._score_shared(list(prefix), [parts[i][1] for i in idx], batch_size), strict=True):
                    out[i] = r
            else:
                single.extend(idx)
        plain = self.score_ids([parts[i][0] + parts[i][1] for i in single], batch_size)
        for i, r in zip(single, plain, strict=True):
            out[i] = r
        return out  # type: ignore[return-value]

    def score_texts(self, texts: list[str], batch_size: int = 8) -> list[float]:
        """Rewards for already-rendered inputs (`template.format_rm_input`)."""
        ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"][-self.max_length:] for t in texts]
        return self.score_ids(ids, batch_size)

    def _each_member(self, one: Callable[[], list[float]]) -> list[float]:
        """`one()` for a single model; for an ensemble, `one()` under each member's adapter,
        combined with the members' weights (`reward.ensemble.combine`)."""
        if not self.members:
            return one()
        from salmon.reward.ensemble import combine

        scores = []
        for name, _ in self.members:
            self.model.set_adapter(name)
            scores.append(one())
        return combine(scores, [w for _, w in self.members])

    def score_ids(self, seqs: list[list[int]], batch_size: int = 8) -> list[float]:
        return self._each_member(lambda: self._score_ids(seqs, batch_size))

    def _score_ids(self, seqs: list[list[int]], batch_size: int) -> list[float]:
        import torch

        out = [0.0] * len(seqs)
        if not seqs:
            return out
        with torch.no_grad():
            for idx in length_buckets([len(s) for s in seqs], batch_size):
                ids, mask = right_pad([seqs[i] for i in idx], self.tokenizer.pad_token_id)
                logits = self._core()(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                      use_cache=False).logits
                for i, r in zip(idx, logits[:, 0].float().tolist(), strict=True):
                    out[i] = r
        return out

    def _score_shared(self, prefix: list[int], suffixes: list[list[int]], batch_size: int) -> list[float]:
        return self._each_member(lambda: self._score_shared_one(prefix, suffixes, batch_size))

    def _score_shared_one(self, prefix: list[int], suffixes: list[list[int]], batch_size: int) -> list[float]:
        """Run `prefix` once; score each suffix on a copy of its key/value cache."""
        import torch

        core, dev = self._core(), self.device
        out = [0.0] * len(suffixes)
        with torch.no_grad():
            cache = core(input_ids=torch.tensor([prefix], device=dev), use_cache=True).cache
            for idx in length_buckets([len(s) for s in suffixes], batch_size):
                ids, mask = right_pad([suffixes[i] for i in idx], self.tokenizer.pad_token_id)
                batch_cache = copy.deepcopy(cache)
                batch_cache.batch_repeat_interleave(len(idx))
                full_mask = torch.cat([torch.ones((len(idx), len(prefix)), dtype=mask.dtype), mask], dim=1)
                logits = core(input_ids=ids.to(dev), attention_mask=full_mask.to(dev), cache=batch_cache,
                              use_cache=True).logits
                for i, r in zip(idx, logits[:, 0].float().tolist(), strict=True):
                    out[i] = r
        return out
