"""Test helper run INSIDE a stack env: a tiny random model of one architecture family.

    make_family.py FAMILY OUT_DIR

Seeded, small (hidden size 32, two layers), saved as safetensors with tiny-gpt2's tokenizer
(its 594-token vocabulary is the models' vocabulary). Families: llama (grouped-query
attention, RoPE), qwen2, gpt_neox, t5 (an encoder-decoder).
"""

import shutil
import sys
from pathlib import Path

import torch
import transformers

TOKENIZER = Path(__file__).resolve().parents[2] / "harness" / "fixtures" / "tiny_gpt2" / "st"
COMMON = {"vocab_size": 594, "bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0}
CONFIGS = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", {
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128}),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128}),
    "gpt_neox": ("GPTNeoXConfig", "GPTNeoXForCausalLM", {
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "max_position_embeddings": 128}),
    "t5": ("T5Config", "T5ForConditionalGeneration", {
        "d_model": 32, "d_ff": 64, "d_kv": 8, "num_layers": 2, "num_heads": 4,
        "decoder_start_token_id": 0}),
}  # fmt: skip


def main() -> None:
    family, out = sys.argv[1], Path(sys.argv[2])
    config_name, model_name, sizes = CONFIGS[family]
    config = getattr(transformers, config_name)(**COMMON, **sizes)
    torch.manual_seed(0)
    model = getattr(transformers, model_name)(config)
    model.save_pretrained(out, safe_serialization=True)
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
        if (TOKENIZER / name).exists():
            shutil.copyfile(TOKENIZER / name, out / name)


if __name__ == "__main__":
    main()
