"""Test helper run INSIDE a stack env: perturb a copy of tiny-gpt2's weights.

perturb.py confident DIR PROMPT IDS_JSON  -> zero the embedding row of a confidently
    chosen token that is absent from the prompt and earlier output; prints its step
perturb.py flatten DIR FACTOR             -> scale ln_f by FACTOR: same argmax, tiny margins
perturb.py nudge DIR SIGMA SEED           -> add seeded noise to ln_f.bias
perturb.py bump DIR                       -> add 1e-3 to one element (a changed file)
perturb.py flip DIR PROMPT                -> raise the first step's runner-up just past the
    top-1 (by half the margin): the smallest real flip of a near-tie; prints the ids
"""

import json
import sys

import numpy as np
from safetensors.numpy import load_file, save_file
from transformers import AutoTokenizer


def _flip(folder: str, prompt: str, weights: dict[str, np.ndarray]) -> dict[str, object]:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder)  # float32, as saved
    ids = AutoTokenizer.from_pretrained(folder)(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        hidden = model.transformer(ids)[0][0, -1].numpy()  # after ln_f: what the head reads
    wte = weights["wte.weight"]
    logits = wte @ hidden
    top, runner_up = (int(i) for i in np.argsort(logits)[::-1][:2])
    assert runner_up not in ids[0].tolist()  # tied: its input embedding must not matter yet
    margin = float(logits[top] - logits[runner_up])
    wte[runner_up] += (1.5 * margin * hidden / float(hidden @ hidden)).astype(np.float32)
    return {"top": top, "runner_up": runner_up, "margin": margin}


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
    elif command == "flip":
        print(json.dumps(_flip(folder, sys.argv[3], weights)))
    elif command == "bump":
        weights["h.0.mlp.c_fc.bias"][0] += np.float32(1e-3)
    save_file(weights, path, metadata={"format": "pt"})


if __name__ == "__main__":
    main()
