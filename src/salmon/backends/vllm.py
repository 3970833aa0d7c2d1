"""vLLM backend for GPUs, behind the same interface. UNTESTED: written against vLLM's
offline `LLM.generate` API but never run, because the machines this project is built on
have no GPU. Install with `pip install salmon[vllm]`.

LoRA adapters go through vLLM's `LoRARequest`; seeds are per request
(`SamplingParams.seed`), so a batch's samples depend only on its seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from salmon.backends.base import SamplingParams, eos_ids, finish_sample, generation_config
from salmon.chat import has_chat_template, stop_strings
from salmon.errors import SalmonError


class VLLMBackend:
    name = "vllm"

    def __init__(self, model: str, *, adapter: str | None = None, dtype: str = "auto", device: str = "auto",
                 trust_remote_code: bool = False, tokenizer=None) -> None:
        try:
            import vllm
        except ImportError:
            raise SalmonError("--backend vllm: the 'vllm' package is not installed "
                              "(pip install 'salmon[vllm]' on a GPU machine, or use --backend ct2/hf)") from None
        from salmon.models import _adapter_base, is_peft_adapter, load_tokenizer, resolve_model

        if device == "cpu":
            raise SalmonError("--backend vllm runs on GPUs; use --backend ct2 on a CPU")
        path = resolve_model(model)
        if Path(path).exists() and is_peft_adapter(Path(path)):
            adapter, path = path, _adapter_base(Path(path))
        self.tokenizer = tokenizer or load_tokenizer(model, trust_remote_code)
        self.llm = vllm.LLM(model=path, dtype=dtype, trust_remote_code=trust_remote_code,
                            enable_lora=adapter is not None)
        if adapter:
            from vllm.lora.request import LoRARequest

            self.lora = LoRARequest("adapter", 1, str(adapter))
        else:
            self.lora = None
        gen_cfg = generation_config(Path(path))
        self.eos = eos_ids(gen_cfg.get("eos_token_id"), self.tokenizer)
        self.top_k = int(gen_cfg.get("top_k", 50) or -1)  # transformers' default; -1 = no top-k cut

    def generate(self, texts: list[str], params: SamplingParams) -> list[list[dict[str, Any]]]:
        import vllm

        ids = self.tokenizer(texts, add_special_tokens=not has_chat_template(self.tokenizer))["input_ids"]
        sp = vllm.SamplingParams(n=params.n, max_tokens=params.max_new_tokens, seed=params.seed,
                                 temperature=params.temperature, top_p=params.top_p if params.temperature > 0 else 1.0,
                                 top_k=self.top_k if params.temperature > 0 else -1,
                                 stop_token_ids=self.eos, include_stop_str_in_output=False, skip_special_tokens=True)
        prompts = [{"prompt_token_ids": p} for p in ids]
        outs = self.llm.generate(prompts, sp, lora_request=self.lora, use_tqdm=False)
        stops = list(params.stop) + stop_strings(self.tokenizer)
        return [[self._sample(list(c.token_ids), c.finish_reason, stops) for c in o.outputs] for o in outs]

    def _sample(self, ids: list[int], reason: str | None, stops: list[str]) -> dict[str, Any]:
        # vLLM drops the stop token from token_ids; put it back so counts match the others.
        if reason == "stop" and (not ids or ids[-1] not in self.eos):
            ids = ids + [self.eos[0]]
        return finish_sample(self.tokenizer, ids, self.eos, stops)
