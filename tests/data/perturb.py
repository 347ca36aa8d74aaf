"""Test helper run INSIDE a stack env: perturb a copy of tiny-gpt2's weights.

perturb.py confident DIR PROMPT IDS_JSON  -> zero the embedding row of a confidently
    chosen token that is absent from the prompt and earlier output; prints its step
perturb.py flatten DIR FACTOR             -> scale ln_f by FACTOR: same argmax, tiny margins
perturb.py nudge DIR SIGMA SEED           -> add seeded noise to ln_f.bias
perturb.py bump DIR                       -> add 1e-3 to one element (a changed file)
"""

import json
import sys

import numpy as np
from safetensors.numpy import load_file, save_file
from transformers import AutoTokenizer


def main() -> None:
    command, folder = sys.argv[1], sys.argv[2]
    path = f"{folder}/model.safetensors"
    weights = load_file(path)
    if command == "confident":
        prompt, ids = sys.argv[3], json.loads(sys.argv[4])
        prompt_ids = set(AutoTokenizer.from_pretrained(folder)(prompt)["input_ids"])
        step = next(p for p in range(3, len(ids)) if ids[p] not in prompt_ids | set(ids[:p]))
        weights["wte.weight"][ids[step]] = 0.0
        print(step)
    elif command == "flatten":
        factor = np.float32(sys.argv[3])
        weights["ln_f.weight"] = weights["ln_f.weight"] * factor
        weights["ln_f.bias"] = weights["ln_f.bias"] * factor
    elif command == "nudge":
        rng = np.random.default_rng(int(sys.argv[4]))
        noise = rng.standard_normal(weights["ln_f.bias"].shape).astype(np.float32)
        weights["ln_f.bias"] = weights["ln_f.bias"] + noise * np.float32(sys.argv[3])
    elif command == "bump":
        weights["h.0.mlp.c_fc.bias"][0] += np.float32(1e-3)
    save_file(weights, path, metadata={"format": "pt"})


if __name__ == "__main__":
    main()
