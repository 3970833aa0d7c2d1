"""The four models of RL (policy, reference, value, reward) on one copy of the base weights.

SALMON trained the policy with several LoRA adapters on one frozen base. Here the base
causal LM is loaded once and wrapped by PEFT with named adapters:

    policy     trainable LoRA; the model being trained (stacked on `sft` when --policy
               is itself an adapter folder)
    reference  the same weights with our adapters off (base, or base + `sft`)
    value      trainable LoRA initialised from the reward adapter, plus a value head that
               starts as a copy of the reward model's score head (`value_head="copy"`, our
               default) or at zero (`"zero"`, the SALMON reference code's choice)
    reward     the reward model's LoRA adapter and score head, frozen

`Role` says which module and which adapters answer for each; `ActorCritic` runs the
policy and the value in one forward, so DDP sees one forward per backward. When the
reward model cannot share the base (a fully fine-tuned RM, another base model, or a
different vocabulary) it is loaded on its own and scores decoded text (decode and
re-encode), and the value adapter starts fresh on the policy's base.
`share_base=False` loads every role as its own copy (for `salmon bench rl-memory`).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from salmon.errors import SalmonError
from salmon.progress import info
from salmon.reward.ensemble import is_ensemble

POLICY, VALUE, REWARD, SFT = "policy", "value", "reward", "sft"
TRAINABLE = (POLICY, VALUE)


@dataclass
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: str = "all-linear"

    def config(self):
        from peft import LoraConfig

        targets: Any = self.target_modules
        if targets != "all-linear":
            targets = [t.strip() for t in targets.split(",") if t.strip()]
        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=targets, task_type="CAUSAL_LM")


@dataclass
class Role:
    """Which module answers for a role, and with which adapters on (None: base only)."""

    lm: nn.Module
    adapters: list[str] | None = None


def core(lm: nn.Module) -> nn.Module:
    """The transformers causal LM inside a PEFT wrapper (LoRA layers stay in it)."""
    return lm.get_base_model() if hasattr(lm, "get_base_model") else lm


def backbone(lm: nn.Module) -> nn.Module:
    m = core(lm)
    return getattr(m, m.base_model_prefix)


def position_ids(mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens, so left and right padding give the same numbers."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def set_trainable(lm: nn.Module) -> None:
    """Exactly the policy and value adapters train; PEFT flips these flags on every switch."""
    config = getattr(lm, "peft_config", None)
    if not config:
        return
    names = list(config)
    lm.set_requires_grad([n for n in names if n in TRAINABLE], True)
    frozen = [n for n in names if n not in TRAINABLE]
    if frozen:
        lm.set_requires_grad(frozen, False)


@contextmanager
def active(role: Role):
    """Run `role.lm` with exactly `role.adapters` on."""
    lm = role.lm
    if not hasattr(lm, "peft_config"):
        if role.adapters:
            raise ValueError(f"a plain model has no adapters {role.adapters}")
        yield lm
        return
    if role.adapters is None:
        with lm.disable_adapter():
            yield lm
    else:
        lm.base_model.set_adapter(role.adapters)
        set_trainable(lm)
        yield lm
    set_trainable(lm)


def hidden_states(role: Role, input_ids: torch.Tensor, mask: torch.Tensor,
                  checkpoint: bool = False) -> torch.Tensor:
    """[B, L, H] last hidden states (after the final norm) of `role`.

    `checkpoint` keeps only the inputs and recomputes the pass during backward. The
    recomputation selects the role's adapters itself: with several adapters on one base,
    per-layer checkpointing would recompute under whichever adapter is active by then.
    """
    if checkpoint and torch.is_grad_enabled():
        from torch.utils.checkpoint import checkpoint as recompute

        return recompute(hidden_states, role, input_ids, mask, use_reentrant=False)
    with active(role) as lm:
        out = backbone(lm)(input_ids=input_ids, attention_mask=mask, position_ids=position_ids(mask),
                           use_cache=False)
    return out.last_hidden_state


def response_logits(role: Role, input_ids: torch.Tensor, mask: torch.Tensor, start: int,
                    checkpoint: bool = False) -> torch.Tensor:
    """Logits predicting tokens start.. of each sequence: [B, L - start, V]."""
    h = hidden_states(role, input_ids, mask, checkpoint)[:, start - 1:-1]
    return core(role.lm).get_output_embeddings()(h).float()


class ActorCritic(nn.Module):
    """Policy logits and per-token values for the response part, in one forward."""

    def __init__(self, policy: Role, value: Role, value_head: nn.Linear, checkpointing: bool = False):
        super().__init__()
        self.checkpointing = checkpointing
        self.policy_lm = policy.lm
        self.value_lm = value.lm  # the same module as policy_lm when the base is shared
        self.value_head = value_head
        self.policy_adapters, self.value_adapters = policy.adapters, value.adapters

    @property
    def policy(self) -> Role:
        return Role(self.policy_lm, self.policy_adapters)

    @property
    def value(self) -> Role:
        return Role(self.value_lm, self.value_adapters)

    def values(self, input_ids: torch.Tensor, mask: torch.Tensor, start: int) -> torch.Tensor:
        h = hidden_states(self.value, input_ids, mask, self.checkpointing)[:, start - 1:-1]
        return self.value_head(h.to(self.value_head.weight.dtype)).squeeze(-1)

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor, start: int):
        logits = response_logits(self.policy, input_ids, mask, start, self.checkpointing)
        return logits, self.values(input_ids, mask, start)


@dataclass
class RLModels:
    actor_critic: ActorCritic
    reference: Role
    reward: Any  # SharedReward or SeparateReward: .score(prompts, responses, principles)
    tokenizer: Any
    base_path: str
    shared: bool


# ---- reward model ------------------------------------------------------------------

def check_rm_folder(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise SalmonError(f"--rm {path}: reward model folder not found (train one with `salmon train-rm`)")
    if not any((path / f).exists() for f in ("adapter_config.json", "config.json")) and not is_ensemble(path):
        raise SalmonError(f"--rm {path}: not a reward model folder (no adapter_config.json or config.json)")
    return path


def rm_base(path: Path) -> str | None:
    """The resolved base model folder of an RM adapter; None for a fully fine-tuned RM."""
    from salmon.models import resolve_model
    from salmon.reward.model import read_meta

    if not (path / "adapter_config.json").exists():
        return None
    meta = read_meta(path)
    cfg = json.loads((path / "adapter_config.json").read_text())
    return resolve_model(meta.get("base_model") or cfg.get("base_model_name_or_path"))


def split_rm_state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(LoRA weights, score-head weights) from an RM adapter's safetensors file."""
    from safetensors.torch import load_file

    state = load_file(str(path / "adapter_model.safetensors"))
    head = {k.rsplit(".", 1)[-1]: v for k, v in state.items() if ".score." in k and "lora_" not in k}
    lora = {k: v for k, v in state.items() if ".score." not in k}
    if "weight" not in head:
        raise SalmonError(f"--rm {path}: adapter has no score head (expected 'score' in modules_to_save)")
    return lora, head


def head_from(state: dict[str, torch.Tensor] | None, hidden: int, trainable: bool, bias: bool = False) -> nn.Linear:
    """A one-output head: a copy of `state`, or all zeros (with a zero bias if `bias`)."""
    head = nn.Linear(hidden, 1, bias=bool(state and "bias" in state) or (state is None and bias))
    with torch.no_grad():
        if state:
            head.weight.copy_(state["weight"].float())
            if "bias" in state:
                head.bias.copy_(state["bias"].float())
        else:
            for param in head.parameters():
                param.zero_()
    head.requires_grad_(trainable)
    return head


class SharedReward:
    """Scores through the `reward` adapter of the shared base and the RM's score head,
    on exactly the token ids the standalone reward model builds (`encode_rm_input`)."""

    def __init__(self, role: Role, head: nn.Linear, tokenizer, meta: dict[str, Any], batch_size: int = 8):
        self.role, self.head, self.tokenizer, self.meta = role, head, tokenizer, meta
        self.batch_size = batch_size

    def score(self, prompts: list[str], responses: list[str], principles: list[list[str]]) -> list[float]:
        from salmon.reward.contrastive import contrastive_score, is_contrastive

        if is_contrastive(self.meta):
            return contrastive_score(self.raw_score, prompts, responses, principles)
        return self.raw_score(prompts, responses, principles)

    @torch.no_grad()
    def raw_score(self, prompts: list[str], responses: list[str], principles: list[list[str]]) -> list[float]:
        from salmon.padding import right_pad
        from salmon.reward.model import length_buckets
        from salmon.reward.template import encode_rm_input

        seqs = [encode_rm_input(self.tokenizer, p, r, ps, int(self.meta["max_length"]))
                for p, r, ps in zip(prompts, responses, principles, strict=True)]
        out = [0.0] * len(seqs)
        device = self.head.weight.device
        for idx in length_buckets([len(s) for s in seqs], self.batch_size):
            ids, mask = right_pad([seqs[i] for i in idx], self.tokenizer.pad_token_id)
            h = hidden_states(self.role, ids.to(device), mask.to(device))
            last = mask.sum(1) - 1
            pooled = h[torch.arange(len(idx)), last.to(device)]
            for i, r in zip(idx, self.head(pooled.to(self.head.weight.dtype))[:, 0].tolist(), strict=True):
                out[i] = r
        return out


class SeparateReward:
    """The reward model on its own weights; it reads text, so any tokenizer works."""

    def __init__(self, rm, batch_size: int = 8):
        self.rm, self.meta, self.tokenizer, self.batch_size = rm, rm.meta, rm.tokenizer, batch_size

    def score(self, prompts: list[str], responses: list[str], principles: list[list[str]]) -> list[float]:
        return self.rm.score(prompts, responses, principles, batch_size=self.batch_size)


# ---- building ----------------------------------------------------------------------

def same_vocab(a, b) -> bool:
    return len(a) == len(b) and a.get_vocab() == b.get_vocab()


def load_rl_models(policy_spec: str, rm_path: str, lora: LoraSettings, *, share_base: bool = True,
                   device: str = "auto", dtype: str = "auto", seed: int = 0,
                   rm_batch_size: int = 8, checkpointing: bool = False, value_head: str = "copy") -> RLModels:
    """Load policy, reference, value and reward, sharing one base copy where possible.
    `value_head`: "copy" (the RM's score head) or "zero"; `checkpointing` recomputes each
    pass in the backward instead of keeping its activations (less memory, a third more compute)."""
    from transformers import AutoTokenizer

    from salmon.models import load_causal_lm, load_tokenizer, pick_device
    from salmon.reward.model import InstructableRewardModel, read_meta

    path = check_rm_folder(rm_path)
    meta = read_meta(path)
    tok = load_tokenizer(policy_spec)
    base, sft = policy_parts(policy_spec)
    rm_tok = AutoTokenizer.from_pretrained(str(path))
    if rm_tok.pad_token is None:
        rm_tok.pad_token = rm_tok.eos_token
    rm_base_path = rm_base(path)
    reason = ("an ensemble of reward models" if is_ensemble(path)
              else _no_share_reason(base, rm_base_path, tok, rm_tok))
    if reason:
        info(f"reward model loaded separately ({reason}); its text is decoded and re-encoded")
    dev = pick_device(device)

    def fresh_lm():
        return load_causal_lm(base, dtype=dtype, device=dev)

    def with_sft(model):
        return attach(model, SFT, sft_config(sft), adapter_state(sft)) if sft else model

    torch.manual_seed(seed)  # the LoRA initialisations
    lm = with_sft(attach(fresh_lm(), POLICY, lora.config()))
    hidden = core(lm).config.hidden_size
    if reason:
        value_cfg, value_state, head_state = lora.config(), None, None
    else:
        value_cfg, (value_state, head_state) = rm_lora_config(path), split_rm_state(path)
    value_lm = attach(lm if share_base else fresh_lm(), VALUE, value_cfg, value_state)
    value_head = head_from(head_state if value_head == "copy" else None, hidden, trainable=True,
                           bias=value_head == "zero").to(dev)
    if reason is None and share_base:
        attach(lm, REWARD, rm_lora_config(path), value_state)
        reward: Any = SharedReward(Role(lm, [REWARD]), head_from(head_state, hidden, False).to(dev),
                                   rm_tok, meta, rm_batch_size)
    else:
        reward = SeparateReward(InstructableRewardModel.load(path, device=dev, dtype=dtype), rm_batch_size)
    ref_adapters = [SFT] if sft else None
    reference = Role(lm if share_base else with_sft(fresh_lm()).requires_grad_(False), ref_adapters)
    for m in (lm, value_lm):
        set_trainable(m)
        no_dropout(m)
    ac = ActorCritic(Role(lm, [SFT, POLICY] if sft else [POLICY]), Role(value_lm, [VALUE]), value_head,
                     checkpointing)
    return RLModels(ac, reference, reward, tok, base, shared=share_base and reason is None)


def policy_parts(spec: str) -> tuple[str, Path | None]:
    """(base model folder, SFT adapter folder or None) for --policy."""
    from salmon.models import is_peft_adapter, resolve_model

    path = resolve_model(spec)
    if not (Path(path).exists() and is_peft_adapter(Path(path))):
        return path, None
    cfg = json.loads((Path(path) / "adapter_config.json").read_text())
    if not cfg.get("base_model_name_or_path"):
        raise SalmonError(f"--policy {spec}: adapter_config.json names no base model")
    return resolve_model(cfg["base_model_name_or_path"]), Path(path)


def sft_config(folder: Path):
    from peft import LoraConfig

    cfg = LoraConfig.from_pretrained(str(folder))
    if cfg.modules_to_save:
        raise SalmonError(f"--policy {folder}: adapters with modules_to_save cannot be stacked; merge it into "
                          "its base model first and pass that folder")
    cfg.inference_mode = False
    return cfg


def adapter_state(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def rm_lora_config(path: Path):
    """The RM adapter's LoRA settings, as a causal-LM adapter without the score head."""
    from peft import LoraConfig

    cfg = LoraConfig.from_pretrained(str(path))
    cfg.task_type, cfg.modules_to_save, cfg.inference_mode = "CAUSAL_LM", None, False
    return cfg


def attach(model: nn.Module, name: str, cfg, state: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """Add LoRA adapter `name` (optionally with weights) to a PEFT model or a plain model."""
    from peft import get_peft_model

    if hasattr(model, "peft_config"):
        model.add_adapter(name, cfg)
    else:
        model = get_peft_model(model, cfg, adapter_name=name)
    if state is not None:
        set_adapter_state(model, name, state, f"adapter '{name}'")
    return model


def no_dropout(model: nn.Module) -> None:
    """Zero every dropout, so the rollout and the update see the same function."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    model.eval()


def _no_share_reason(base: str, rm_base_path: str | None, tok, rm_tok) -> str | None:
    if rm_base_path is None:
        return "a fully fine-tuned reward model, not an adapter"
    if Path(rm_base_path).resolve() != Path(base).resolve():
        return f"its base {rm_base_path} is not the policy's {base}"
    if not same_vocab(tok, rm_tok):
        return "its tokenizer differs from the policy's"
    return None


def set_adapter_state(lm: nn.Module, name: str, state: dict[str, torch.Tensor], where: str) -> None:
    from peft import set_peft_model_state_dict

    result = set_peft_model_state_dict(lm, state, adapter_name=name)
    bad = [k for k in result.unexpected_keys if "lora_" in k]
    if bad:
        raise SalmonError(f"{where}: adapter weight {bad[0]} does not fit the policy's base model")
