"""Command lines read their defaults from the config dataclasses: with no options, each builds the default config."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from eval.config_cli import defaults_from, from_args
from eval.grid import add_grid_arguments, grid_config
from eval.matrix_config import MatrixConfig
from training.captions import CaptionConfig, build_parser as captions_parser
from training.demos.attempts import GenerateConfig
from training.finetune import FinetuneConfig, build_parser as finetune_parser, config_from_args
from training.pretrain_backbone import PretrainConfig, build_parser as pretrain_parser


@dataclass
class Cfg:
    out: Path
    steps: int = 7
    names: list[str] = field(default_factory=lambda: ["a"])


def test_defaults_come_from_the_fields_and_an_explicit_default_stays():
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path)
    p.add_argument("--steps", type=int)
    p.add_argument("--names", nargs="+")
    p.add_argument("--verbose", type=int, default=3)  # not a field: its own default
    defaults_from(p, Cfg)
    a = p.parse_args(["--out", "x"])
    assert (a.steps, a.names, a.verbose) == (7, ["a"], 3)
    assert from_args(Cfg, a) == Cfg(Path("x")) and from_args(Cfg, a, steps=9).steps == 9
    assert p.parse_args(["--out", "x", "--steps", "2"]).steps == 2


def test_finetune_cli_defaults_are_finetune_config_defaults():
    cfg = config_from_args(finetune_parser().parse_args(["--dataset-path", "d", "--output-dir", "o"]))
    assert cfg == FinetuneConfig(dataset_paths=[Path("d")], output_dir=Path("o"))


def test_pretrain_and_captions_cli_defaults_are_their_configs():
    a = pretrain_parser().parse_args(["--captions", "c", "--out", "o"])
    assert from_args(PretrainConfig, a) == PretrainConfig(captions=Path("c"), out=Path("o"))
    assert from_args(CaptionConfig, captions_parser().parse_args(["--out", "o"])) == CaptionConfig(out=Path("o"))


def test_generate_cli_defaults_are_generate_config_defaults(monkeypatch):
    from training.demos import generate as module

    seen = {}
    monkeypatch.setattr(module, "generate", lambda cfg, progress: seen.setdefault("cfg", cfg) and [])
    module.main(["--recipe", "seed", "--out", "o", "--quiet"])
    assert seen["cfg"] == GenerateConfig(recipe="seed", out=Path("o"))


def test_grid_cli_defaults_are_matrix_config_defaults():
    p = argparse.ArgumentParser()
    add_grid_arguments(p)
    assert grid_config(p.parse_args([]), p.error) == MatrixConfig()


def test_probe_and_teleop_cli_defaults_are_their_configs():
    from training.probe_language import LanguageProbeConfig, build_parser as language_parser
    from training.probe_vram import ProbeConfig, build_parser as vram_parser
    from training.teleop.__main__ import build_parser as teleop_parser
    from training.teleop.keyboard import KeyboardConfig
    from training.teleop.leader import LeaderConfig
    from training.teleop.session import SessionConfig

    assert from_args(ProbeConfig, vram_parser().parse_args([])) == ProbeConfig()
    a = language_parser().parse_args(["--preset", "tiny"])
    assert from_args(LanguageProbeConfig, a) == LanguageProbeConfig(preset="tiny")
    t = teleop_parser().parse_args(["--device", "keyboard", "--out", "o"])
    s, k = SessionConfig(), KeyboardConfig()
    assert (t.scenario, t.instruction, t.max_steps, t.fps) == (s.scenario, s.instruction, s.max_steps, s.fps)
    assert (t.pos_step, t.leader_id, t.calibration_dir) == (k.pos_step, LeaderConfig.id, None)


def test_add_options_types_and_defaults_come_from_the_fields():
    from eval.config_cli import add_options

    p = argparse.ArgumentParser()
    add_options(p, Cfg, "steps", steps="how many")
    assert p.parse_args([]).steps == 7 and p.parse_args(["--steps", "3"]).steps == 3
    assert next(a for a in p._actions if a.dest == "steps").help == "how many"
