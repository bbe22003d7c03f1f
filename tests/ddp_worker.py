"""One rank of tests/test_finetune.py's DDP test, run under torchrun: trains 2 steps on CPU (gloo) and writes what
this rank drew and its final weights' hash to OUT/rank{RANK}.json. Not a test module itself."""

import hashlib
import json
import os
import sys
from pathlib import Path

from training import data, finetune


def digest(model) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode() + tensor.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()


dataset, out = Path(sys.argv[1]), Path(sys.argv[2])
drawn: list[list[int]] = []
gather = data.WindowBatches.__call__
data.WindowBatches.__call__ = lambda self, indices: drawn.append(list(indices)) or gather(self, indices)
models = []
build = finetune.VLA
finetune.VLA = lambda *a, **k: models.append(build(*a, **k)) or models[-1]
initial = {}
finetune.train(finetune.FinetuneConfig(dataset_paths=[dataset], output_dir=out / "run", preset="tiny", batch_size=4,
                                       max_steps=2, learning_rate=1e-3, save_steps=100, log_steps=1),
               log=lambda *_: initial.setdefault("weights", digest(models[0])) and None, progress=False)
rank = os.environ["RANK"]
(out / f"rank{rank}.json").write_text(json.dumps({"indices": drawn, "initial": initial["weights"],
                                                  "final": digest(models[0])}))
