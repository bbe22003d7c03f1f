"""Do different instructions give different backbone features? A cosine-similarity probe of one scene.

    python -m training.probe_language --checkpoint runs/dis                  # a fine-tuned model
    python -m training.probe_language --preset small                         # fresh: pretrained MiniLM, frozen
    python -m training.probe_language --preset small --backbone-checkpoint runs/backbone --scenario "H,-"

The seed's hypothesis: with the VLM backbone frozen, the backbone features of different instructions are nearly
identical (cosine similarity > 0.95), so the action head has nothing to condition on. This renders one scene
(front + wrist camera, at the model's image size), runs ``model.features`` on it with each probe instruction, pools
the features and writes the pairwise cosine similarities to ``--out`` (default ``outputs/probe_language/``):

- ``similarity.csv``: pooled over every valid position ([CLS], image tokens, instruction tokens): what the head's
  cross-attention sees as a whole;
- ``similarity_text.csv``: pooled over the instruction's own positions only ([CLS], its word pieces and [SEP]),
  leaving out the image tokens, which dominate the first pooling and are the same scene for every instruction;
- ``similarity.png`` (both heatmaps), ``summary.md`` and ``summary.json`` (the hypothesis, tested).

``--preset`` with no checkpoint builds a fresh model: the pretrained MiniLM exactly as a frozen backbone keeps it,
with an untrained vision tower and projection (``--backbone-checkpoint`` loads a pretrained tower). It is the
"frozen backbone" reference to set a fine-tuned checkpoint against.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from eval.config_cli import defaults_from, from_args
from leisaac_tasks.instructions import SEED_INSTRUCTIONS
from leisaac_tasks.perturbations import FAMILIES, NEVER_PRESENT, PLACE_TEMPLATE
from leisaac_tasks.scenarios import Scenario
from policies.vla.config import PRESETS
from policies.vla.images import resize_images
from policies.vla.model import VLA
from policies.vla.runtime import preset, resolve_device
from training.probe_vram import SYNTHETIC_NORM

HYPOTHESIS_THRESHOLD = 0.95
POOLINGS = ("all", "text")


class LanguageProbeError(ValueError):
    pass


@dataclass(frozen=True)
class ProbeInstruction:
    key: str  # short label for tables and heatmaps
    text: str
    kind: str  # why it is in the list


def _probe_instructions() -> tuple[ProbeInstruction, ...]:
    place_cheese, place_bread, avoid_cheese = (i.text for i in SEED_INSTRUCTIONS)
    paraphrase = FAMILIES["paraphrase"](SEED_INSTRUCTIONS[0], Scenario.parse("H,H"))[0].text
    return (
        ProbeInstruction("cheese", place_cheese, "seed: place cheese"),
        ProbeInstruction("bread", place_bread, "seed: place bread"),
        ProbeInstruction("cheese paraphrase", paraphrase, "paraphrase of the cheese instruction (same meaning)"),
        ProbeInstruction("pick up cheese", "pick up the cheese", "affirmative twin of the negation"),
        ProbeInstruction("not cheese", avoid_cheese, "seed: negation"),
        ProbeInstruction("tomato", PLACE_TEMPLATE.format(NEVER_PRESENT), "absent object"),
        ProbeInstruction("nonsense", "purple elephant dances quietly", "nonsense"),
        ProbeInstruction("empty", "", "empty instruction"),
    )


PROBE_INSTRUCTIONS = _probe_instructions()


@dataclass(frozen=True)
class LanguageProbeConfig:
    out: Path = Path("outputs/probe_language")  # git-ignored: reports/ is tracked
    checkpoint: Path | None = None
    preset: str | None = None
    backbone_checkpoint: Path | None = None
    scenario: str = "H,H"
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if (self.checkpoint is None) == (self.preset is None):
            raise LanguageProbeError("give exactly one of --checkpoint DIR (a trained model) or --preset NAME "
                                     "(a fresh model)")
        if self.preset is not None:
            preset(self.preset)  # a bad name fails here, with the choices
        if self.backbone_checkpoint is not None and self.checkpoint is not None:
            raise LanguageProbeError("--backbone-checkpoint only goes with --preset: a checkpoint already holds "
                                     "its vision tower")
        Scenario.parse(self.scenario)  # a bad scenario fails here, before any model is built


# --- model and scene -------------------------------------------------------------------------------------------
def load_model(cfg: LanguageProbeConfig, device: torch.device) -> tuple[VLA, str]:
    """The model and one line saying what it is."""
    if cfg.checkpoint is not None:
        model = VLA.load(cfg.checkpoint)
        source = f"checkpoint `{cfg.checkpoint}`"
    else:
        torch.manual_seed(cfg.seed)  # the untrained ViT and projections are random: fix them
        model = VLA(preset(cfg.preset), SYNTHETIC_NORM)
        source = f"fresh `{cfg.preset}` model (pretrained MiniLM, untrained vision tower)"
        if cfg.backbone_checkpoint is not None:
            if not (Path(cfg.backbone_checkpoint) / "backbone.safetensors").exists():
                raise LanguageProbeError(f"{cfg.backbone_checkpoint} holds no backbone.safetensors; point "
                                         f"--backbone-checkpoint at a training/pretrain_backbone.py output folder")
            from training.finetune import load_backbone_weights  # lazy: pulls in the training data stack

            load_backbone_weights(model, cfg.backbone_checkpoint)
            source = (f"fresh `{cfg.preset}` model (pretrained MiniLM, vision tower from "
                      f"`{cfg.backbone_checkpoint}`)")
    return model.to(device).eval(), source


def backbone_state(model: VLA) -> tuple[bool, str]:
    """(is the language model frozen, a readable description of how the backbone was tuned)."""
    t = model.tune
    llm = f"LoRA r{t.lora_rank}" if "llm" in t.lora_targets else "fully tuned" if t.tune_llm and not t.adapters_only \
        else "frozen"
    vis = f"LoRA r{t.lora_rank}" if "visual" in t.lora_targets else \
        "fully tuned" if t.tune_visual and not t.adapters_only else "frozen"
    return llm == "frozen", f"LLM {llm}, vision tower {vis}"


def render_scene(scenario: str, seed: int, cameras: tuple[str, ...], size: int) -> dict[str, torch.Tensor]:
    """One observation of each camera, (1, 3, size, size) uint8, rendered at the model's resolution."""
    try:
        from leisaac_tasks.env import SandwichEnv  # lazy: the simulator is only needed here

        env = SandwichEnv(task="sandwich", cameras=cameras, image_size=size)  # the backend imports MuJoCo here
    except ImportError as exc:
        raise LanguageProbeError(f"rendering the scene needs the simulator (MuJoCo): {exc}") from None
    try:
        obs, _ = env.reset(seed=seed, options={"scenario": scenario})
    finally:
        env.close()
    return {cam: resize_images(obs[cam], size)[None] for cam in cameras}


# --- features and similarities ---------------------------------------------------------------------------------
def text_positions(model: VLA, mask: torch.Tensor) -> torch.Tensor:
    """Mask of the instruction's positions in the backbone sequence.

    Backbone.forward lays the sequence out as [CLS], the image tokens of every camera, then the instruction's word
    pieces, [SEP] and padding; ``mask`` already drops the padding, so the text positions are the valid ones that are
    not image tokens. [CLS] and [SEP] stay in, so even the empty instruction has two positions.
    """
    cfg = model.cfg
    n_image = cfg.image_tokens_per_camera * len(cfg.cameras)
    if mask.shape[1] != n_image + cfg.max_text_tokens:
        raise LanguageProbeError(f"backbone sequence has {mask.shape[1]} positions, expected 1 + {n_image} image + "
                                 f"{cfg.max_text_tokens - 1} text: Backbone.forward's layout changed, update "
                                 f"text_positions")
    text = mask.clone()
    text[:, 1:1 + n_image] = False
    return text


@torch.no_grad()
def pooled_features(model: VLA, images: dict[str, torch.Tensor], texts: list[str]) -> dict[str, torch.Tensor]:
    """Masked mean of ``model.features`` per instruction: {"all": (n, width), "text": (n, width)}, float64, on the
    CPU wherever the model runs: every caller goes on in numpy, which cannot read a CUDA tensor."""
    device = next(model.parameters()).device
    batch = {cam: img.to(device).expand(len(texts), -1, -1, -1) for cam, img in images.items()}
    batch["task"] = list(texts)
    features, mask = model.features(batch)
    features = features.double()
    out = {}
    for name, keep in (("all", mask), ("text", text_positions(model, mask))):
        w = keep.to(features.dtype)[..., None]
        out[name] = ((features * w).sum(1) / w.sum(1)).cpu()
    return out


def cosine_matrix(x: torch.Tensor) -> np.ndarray:
    """Pairwise cosine similarities, (n, n), exactly symmetric."""
    unit = torch.nn.functional.normalize(x.double(), dim=-1)
    s = (unit @ unit.T).cpu().numpy()
    return np.clip((s + s.T) / 2, -1.0, 1.0)


def similarity_matrices(model: VLA, images: dict[str, torch.Tensor], texts: list[str]) -> dict[str, np.ndarray]:
    return {name: cosine_matrix(x) for name, x in pooled_features(model, images, texts).items()}


def off_diagonal_mean(s: np.ndarray) -> float:
    n = len(s)
    return float((s.sum() - np.trace(s)) / (n * n - n))


@dataclass(frozen=True)
class Summary:
    pooling: str
    mean_off_diagonal: float
    min_off_diagonal: float
    cheese_vs_bread: float
    negation_vs_affirmative: float  # "do not pick up the cheese" vs "pick up the cheese"
    negation_vs_seed_cheese: float
    cheese_vs_paraphrase: float
    cheese_vs_nonsense: float

    @property
    def hypothesis_holds(self) -> bool:
        return self.mean_off_diagonal > HYPOTHESIS_THRESHOLD


def summarize(s: np.ndarray, pooling: str, keys: list[str]) -> Summary:
    at = {k: i for i, k in enumerate(keys)}
    pair = lambda a, b: float(s[at[a], at[b]])  # noqa: E731
    off = s[~np.eye(len(s), dtype=bool)]
    return Summary(pooling, off_diagonal_mean(s), float(off.min()), pair("cheese", "bread"),
                   pair("not cheese", "pick up cheese"), pair("not cheese", "cheese"),
                   pair("cheese", "cheese paraphrase"), pair("cheese", "nonsense"))


# --- reports ---------------------------------------------------------------------------------------------------
def write_matrix_csv(path: Path, s: np.ndarray, instructions: tuple[ProbeInstruction, ...]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["key", "text", *(i.key for i in instructions)])
        for ins, row in zip(instructions, s):
            w.writerow([ins.key, ins.text, *(f"{v:.6f}" for v in row)])


def read_matrix_csv(path: Path) -> tuple[list[str], np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0][2:], np.array([[float(v) for v in r[2:]] for r in rows[1:]])


def plot_heatmaps(path: Path, matrices: dict[str, np.ndarray], keys: list[str], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(matrices), figsize=(6.2 * len(matrices), 5.6))
    for ax, (name, s) in zip(np.atleast_1d(axes), matrices.items()):
        # Colour from the smallest similarity up to 1, so differences near 1 stay visible.
        low = float(s[~np.eye(len(s), dtype=bool)].min()) if len(s) > 1 else 0.0
        im = ax.imshow(s, vmin=min(low, 0.999), vmax=1.0, cmap="viridis")
        for i in range(len(s)):
            for j in range(len(s)):
                ax.text(j, i, f"{s[i, j]:.3f}", ha="center", va="center", fontsize=7,
                        color="white" if s[i, j] < (low + 1) / 2 else "black")
        ax.set_xticks(range(len(keys)), keys, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(keys)), keys, fontsize=8)
        ax.set_title(f"pooled over {'all valid' if name == 'all' else 'instruction'} tokens", fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _meaning_vs_wording(s: Summary, tolerance: float = 0.005) -> str:
    gap = s.cheese_vs_paraphrase - s.cheese_vs_bread
    if abs(gap) < tolerance:
        return "about equal, so the pooled features barely separate a change of target from a change of wording."
    if gap < 0:
        return "a different target is closer than the same meaning reworded: the features follow the wording."
    return "the same meaning reworded is closer than a different target."


def summary_markdown(cfg: LanguageProbeConfig, source: str, tuning: str, llm_frozen: bool,
                     summaries: dict[str, Summary], instructions: tuple[ProbeInstruction, ...]) -> str:
    main, text = summaries["all"], summaries["text"]
    verdict = "holds" if main.hypothesis_holds else "does not hold"
    frozen_note = ("its language model is frozen, so this is the case the hypothesis is about" if llm_frozen else
                   "its language model was tuned, so compare it with a frozen reference "
                   "(`--preset small`)")
    lines = [
        "# Language-embedding probe",
        "",
        f"Model: {source}; {tuning}. Scene {cfg.scenario}, seed {cfg.seed}, {len(instructions)} instructions.",
        "",
        f"**Hypothesis \"with the backbone frozen, features of different instructions have cosine similarity > "
        f"{HYPOTHESIS_THRESHOLD}\": {verdict} for this model** (mean off-diagonal similarity "
        f"{main.mean_off_diagonal:.3f}, pooled over all tokens); {frozen_note}. For the seed's own pair, cheese "
        f"vs bread, it is {main.cheese_vs_bread:.3f} "
        f"({'above' if main.cheese_vs_bread > HYPOTHESIS_THRESHOLD else 'below'} {HYPOTHESIS_THRESHOLD}).",
        "",
        "| pooling | mean off-diagonal | min off-diagonal | cheese vs bread | negation vs affirmative | "
        "negation vs seed cheese | cheese vs paraphrase | cheese vs nonsense |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in (main, text):
        values = (s.mean_off_diagonal, s.min_off_diagonal, s.cheese_vs_bread, s.negation_vs_affirmative,
                  s.negation_vs_seed_cheese, s.cheese_vs_paraphrase, s.cheese_vs_nonsense)
        lines.append(f"| {'all tokens' if s.pooling == 'all' else 'instruction tokens'} | "
                     + " | ".join(f"{v:.4f}" for v in values) + " |")
    lines += [
        "",
        f"- Negation vs affirmative is \"do not pick up the cheese\" vs \"pick up the cheese\". Over the instruction "
        f"tokens alone the mean is {text.mean_off_diagonal:.3f}: the image tokens, identical for every instruction, "
        f"pull the all-token number towards 1.",
        f"- Wording vs meaning: cheese vs its paraphrase (same meaning) {main.cheese_vs_paraphrase:.3f}, cheese vs "
        f"bread (other target) {main.cheese_vs_bread:.3f}: "
        + _meaning_vs_wording(main),
        "- A similarity near 1 does not by itself stop a head from telling instructions apart: the head "
        "cross-attends to every token, not to the mean. It says the difference is a small part of the signal, "
        "which a head trained on data where the scene already decides the action has no reason to use.",
        "- Instructions: " + "; ".join(f"{i.key} = \"{i.text}\"" for i in instructions),
        "- Files: `similarity.csv` (all tokens), `similarity_text.csv` (instruction tokens), `similarity.png`.",
    ]
    return "\n".join(lines) + "\n"


def run(cfg: LanguageProbeConfig, log=print, progress: bool = True) -> dict[str, Summary]:
    device = resolve_device(cfg.device)
    log(f"loading the model on {device}")  # before the bar: a bad checkpoint's error comes first on stderr
    model, source = load_model(cfg, device)
    llm_frozen, tuning = backbone_state(model)
    # Three stages, each a few seconds to a minute on a CPU: the bar names the one running.
    bar = tqdm(total=3, desc="rendering the scene", unit="stage", disable=not progress, dynamic_ncols=True,
               bar_format="{desc:<28} {n_fmt}/{total_fmt} stages [{elapsed}]")
    with bar:
        images = render_scene(cfg.scenario, cfg.seed, model.cfg.cameras, model.cfg.image_size)
        instructions = PROBE_INSTRUCTIONS
        keys = [i.key for i in instructions]
        bar.update()
        bar.set_description_str(f"features of {len(instructions)} instructions")
        matrices = similarity_matrices(model, images, [i.text for i in instructions])
        summaries = {name: summarize(s, name, keys) for name, s in matrices.items()}
        bar.update()
        bar.set_description_str("writing the reports")
        _write_reports(cfg, source, tuning, llm_frozen, matrices, summaries, instructions, keys)
        bar.update()
    main = summaries["all"]
    out = Path(cfg.out)
    log(f"mean off-diagonal similarity {main.mean_off_diagonal:.3f} (instruction tokens: "
        f"{summaries['text'].mean_off_diagonal:.3f}); cheese vs bread {main.cheese_vs_bread:.3f}; hypothesis "
        f"'> {HYPOTHESIS_THRESHOLD}' {'holds' if main.hypothesis_holds else 'does not hold'}")
    log(f"wrote {out}/: summary.md, summary.json, similarity.csv, similarity_text.csv, similarity.png")
    return summaries


def _write_reports(cfg: LanguageProbeConfig, source: str, tuning: str, llm_frozen: bool,
                   matrices: dict[str, np.ndarray], summaries: dict[str, Summary],
                   instructions: tuple[ProbeInstruction, ...], keys: list[str]) -> None:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_matrix_csv(out / "similarity.csv", matrices["all"], instructions)
    write_matrix_csv(out / "similarity_text.csv", matrices["text"], instructions)
    plot_heatmaps(out / "similarity.png", matrices, keys, f"cosine similarity of backbone features: {source}, "
                                                          f"scene {cfg.scenario}")
    (out / "summary.md").write_text(summary_markdown(cfg, source, tuning, llm_frozen, summaries, instructions))
    (out / "summary.json").write_text(json.dumps({
        "model": source, "tuning": tuning, "llm_frozen": llm_frozen, "scenario": cfg.scenario, "seed": cfg.seed,
        "threshold": HYPOTHESIS_THRESHOLD,
        "summaries": {k: {**s.__dict__, "hypothesis_holds": s.hypothesis_holds} for k, s in summaries.items()},
        "instructions": [i.__dict__ for i in instructions]}, indent=2))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.probe_language", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, help="a checkpoint folder from training.finetune")
    p.add_argument("--preset", help=f"no checkpoint: a fresh model of this size ({', '.join(PRESETS)})")
    p.add_argument("--backbone-checkpoint", type=Path, help="with --preset: pretrained vision tower + projector")
    p.add_argument("--scenario", help="the scene, (cheese, bread) placements, e.g. H,H or P,-")
    p.add_argument("--seed", type=int, help="layout seed (and the fresh model's init)")
    p.add_argument("--out", type=Path, help=f"folder for the reports (default {LanguageProbeConfig.out}, git-ignored)")
    p.add_argument("--device")
    defaults_from(p, LanguageProbeConfig)
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        cfg = from_args(LanguageProbeConfig, a)
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # "pooler weights not used" is expected: GR00T reads hidden states
        run(cfg)
    except ValueError as exc:  # LanguageProbeError, CheckpointError, ProbeError, bad scenario
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
