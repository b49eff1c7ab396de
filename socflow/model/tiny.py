"""A tiny random-weight Llama for tests: real loading path, real tokenizer, seconds to build.

``build_tiny_llama(dest, seed)`` writes a local Hugging Face directory (2 layers, hidden 64) with a byte-level
BPE tokenizer trained here with ``tokenizers`` and a ChatML chat template. The tokenizer depends on nothing
but this file, so every seed shares it; only the weights vary with ``seed``. Fluent it is not: it exists to
exercise loading, chat templates, constrained decoding, scoring and audit without a download.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
VOCAB_SIZE = 600

_CORPUS = [
    '{"verdict": "malicious", "summary": "failed logons then LSASS access", "severity": 7}',
    '{"verdict":"benign","reason":"scheduled backup","items":[{"host":"WS123","score":3}]}',
    "Summarise the alert. 5 failed logons for alice on WS123 then LSASS access by procdump.exe.",
    "T1059 T1059.001 T1059.003 T1003.001 T1110 T1078 credential access brute force powershell cmd",
    "The user logged on to the host; the process opened a handle to lsass.exe; the analyst approved.",
    "benign malicious suspicious needs_review true false null 0 1 2 3 4 5 6 7 8 9 10 100",
    "system user assistant You are a SOC triage assistant. Reply with JSON only.",
    "".join(chr(c) for c in range(32, 127)),
]


@lru_cache(maxsize=1)
def _tokenizer_json() -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return str(tok.to_str())


def build_tiny_tokenizer(dest: Path) -> Path:
    """Save the shared tiny tokenizer (with its chat template) into ``dest``."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    dest.mkdir(parents=True, exist_ok=True)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tokenizer_json()),
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(dest))
    return dest


def build_tiny_llama(dest: Path, seed: int = 0, *, max_position_embeddings: int = 2048) -> Path:
    """Write a random-weight 2-layer Llama (hidden 64) and the tiny tokenizer to ``dest``; return it."""
    import torch
    import transformers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    transformers.utils.logging.disable_progress_bar()
    dest = Path(dest)
    build_tiny_tokenizer(dest)
    vocab = json.loads(_tokenizer_json())["model"]["vocab"]
    added = {t["content"]: t["id"] for t in json.loads(_tokenizer_json())["added_tokens"]}
    vocab_size = max([*vocab.values(), *added.values()]) + 1
    eos, pad = added["<|im_end|>"], added["<|endoftext|>"]
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_position_embeddings,
        eos_token_id=eos,
        pad_token_id=pad,
        bos_token_id=None,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=pad)
    model.save_pretrained(str(dest))
    return dest
