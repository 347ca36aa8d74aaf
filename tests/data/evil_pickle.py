"""Test helper run INSIDE a stack env: a pytorch_model.bin whose unpickling creates a file.

    evil_pickle.py MODEL_DIR MARKER

The real weights stay in the file, with one more entry whose unpickling calls
builtins.open(MARKER, "w"): loading it without weights_only creates MARKER.
"""

import sys

import torch


class Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.marker, "w"))


def main() -> None:
    folder, marker = sys.argv[1], sys.argv[2]
    path = f"{folder}/pytorch_model.bin"
    state = torch.load(path, weights_only=True)
    state["payload"] = Payload(marker)
    torch.save(state, path)


if __name__ == "__main__":
    main()
