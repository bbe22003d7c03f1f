"""What the command-line tools print: every --help shows a working example, default outputs are git-ignored, and a
run shows progress and results while the libraries' chatter stays off the console."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("eval", "leisaac_tasks", "policies", "training")


def _cli_modules() -> list[str]:
    """Every module with a ``main()``: the console scripts and the ``python -m`` / ``python path.py`` commands."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if re.search(r"^def main\(", path.read_text(), re.M):
                found.append(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return found


CLI_MODULES = _cli_modules()
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
EXAMPLE = re.compile(r"^ +(python -m \w|python [\w/]+\.py|chefmate-\w|torchrun )")


def _own_commands(module: str) -> tuple[str, ...]:
    """How an example line invokes this module: python -m (also the short aliases), python path.py, chefmate-*."""
    names = {module, module.removesuffix(".__main__"), module.removesuffix(".cli"), module.replace(".demos.", ".")}
    path = module.replace(".", "/") + ".py"
    scripts = [name for name, target in SCRIPTS.items() if target == f"{module}:main"]
    return tuple(f"python -m {n}" for n in names) + (f"python {path}",) + tuple(scripts)


def _git_ignored(path: Path) -> bool:
    """Whether git ignores what a tool writes into ``path``: asked for a file inside it, since a folder pattern
    (``reports/matrix/``) only matches a path git knows to be a folder, and in a fresh clone it isn't one yet."""
    done = subprocess.run(["git", "check-ignore", "-q", "--no-index", str(Path(path) / "any.file")], cwd=ROOT)
    return done.returncode == 0


def test_every_console_script_is_a_module_main():
    for name, target in SCRIPTS.items():
        module, _, func = target.partition(":")
        assert func == "main" and module in CLI_MODULES, (name, target)


@pytest.mark.parametrize("module", CLI_MODULES)
def test_help_shows_a_working_example(module, monkeypatch, capsys):
    parsers: list[argparse.ArgumentParser] = []
    show_help = argparse._HelpAction.__call__

    def spy(self, parser, *args, **kwargs):  # keep the parser that printed the help, to read its defaults
        parsers.append(parser)
        return show_help(self, parser, *args, **kwargs)

    monkeypatch.setattr(argparse._HelpAction, "__call__", spy)
    monkeypatch.setattr(sys, "argv", [module, "--help"])
    with pytest.raises(SystemExit) as done:
        importlib.import_module(module).main()
    assert done.value.code in (0, None)
    text = capsys.readouterr().out
    examples = [line for line in text.splitlines() if EXAMPLE.match(line)]
    assert examples, f"`{module} --help` shows no example command:\n{text}"
    # Flags an example passes to this very command must be ones its help documents (quoted arguments aside).
    own = _own_commands(module)
    for line in examples:
        command = line.strip()
        if not any(command == c or command.startswith(c + " ") for c in own):
            continue
        flags = set(re.findall(r"(?<![\w-])--[a-z][\w-]*", re.sub(r"\"[^\"]*\"|'[^']*'", "", command)))
        undocumented = sorted(f for f in flags if f not in text)
        assert not undocumented, f"{module}: example `{command}` uses {undocumented}, which --help never mentions"
    # A default output folder must be git-ignored: reports/ is tracked.
    for action in parsers[0]._actions if parsers else ():
        if action.dest == "out" and action.default is not None:
            assert _git_ignored(Path(action.default)), f"{module}: --out defaults to {action.default}, tracked by git"


def test_run_matrix_help_names_the_robot_flag(capsys):
    from eval.run_matrix import build_parser

    text = build_parser().format_help()
    assert "--robot {so101,sim_so101}" in text and "python -m eval.real_arm" in text


def test_real_arm_lists_and_parses_the_grid_flags_as_run_matrix_does():
    from eval.real_arm.cli import build_parser
    from eval.run_matrix import grid_config, parse_args

    parser = build_parser()
    text = parser.format_help()
    for flag in ("--policies", "--scenarios", "--include-ninth", "--families", "--instructions-file", "--seeds",
                 "--image-size", "--max-steps", "--out", "--resume"):
        assert flag in text
    grid = ["--policies", "expert,blind", "--scenarios", "H,H;P,-", "--families", "negation", "--seeds", "2",
            "--max-steps", "90", "--out", "x"]
    arm = grid_config(parser.parse_args(["--robot", "sim_so101", *grid]), parser.error)
    assert arm == parse_args(grid) and arm.episodes() == parse_args(grid).episodes()
    with pytest.raises(SystemExit):  # simulator-only flags mean nothing on an arm
        parser.parse_args(["--robot", "sim_so101", "--workers", "2"])


def test_probe_defaults_are_git_ignored():
    from training.probe_language import LanguageProbeConfig
    from training.probe_vram import ProbeConfig

    for out in (LanguageProbeConfig.out, ProbeConfig.out):
        assert not Path(out).is_relative_to("reports") and _git_ignored(Path(out)), out


# --- library chatter ------------------------------------------------------------------------------------------------
def test_library_log_keeps_info_in_the_file_and_warnings_on_the_console(tmp_path, capsys):
    from leisaac_tasks.console import library_log

    root = logging.getLogger()
    # What LeRobot's robot modules do on import: logging.basicConfig(level=INFO), a console handler at NOTSET.
    chatty = logging.StreamHandler(sys.stderr)
    root.addHandler(chatty)
    level, handlers = root.level, list(root.handlers)
    try:
        with library_log(tmp_path / "logs" / "libraries.log") as path:
            logging.getLogger("lerobot.somewhere").info("Using video codec: h264")
            logging.getLogger("lerobot.somewhere").warning("Episode finished with 2 dropped frames")
        err = capsys.readouterr().err
        assert "Using video codec" not in err and "dropped frames" in err
        logged = path.read_text()
        assert "Using video codec: h264" in logged and "dropped frames" in logged
        assert chatty.level == logging.NOTSET and root.level == level and root.handlers == handlers  # as they were
    finally:
        root.removeHandler(chatty)


def _run(args: list[str], cwd: Path, timeout: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "MUJOCO_GL": "egl", "PYTHONPATH": str(ROOT)}
    env.pop("HF_DATASETS_DISABLE_PROGRESS_BARS", None)  # the tool must switch the bars off itself
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


NOISE = ("libx264", "x264 -", "using cpu capabilities", "Map:", "UserWarning", "DeprecationWarning", "INFO")


def test_readme_demo_commands_show_progress_and_results_not_library_chatter(tmp_path, capfd):
    """generate, then export_gr00t and necessity on its output, as the README runs them."""
    from training.demos.export_gr00t import main as export_main
    from training.demos.necessity import main as necessity_main
    from training.demos.necessity import report_for

    out = tmp_path / "g"
    done = _run(["-m", "training.demos.generate", "--recipe", "seed", "--episodes", "1", "--image-size", "32",
                 "--out", str(out)], ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    for noise in NOISE:
        assert noise not in done.stderr + done.stdout, (noise, done.stderr)
    assert "cheese: 100%" in done.stderr and "bread: 100%" in done.stderr  # the progress bars
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith(f"wrote {out / 'cheese'}/") and "generation.json" in last and "libraries.log" in last
    assert "Using video codec" in (out / "logs" / "libraries.log").read_text()

    capfd.readouterr()
    assert export_main([str(out / "cheese"), str(tmp_path / "gr00t")]) == 0
    printed = capfd.readouterr()  # file-descriptor level: FFmpeg writes there, not through sys.stderr
    assert "export: 100%" in printed.err and not any(noise in printed.err for noise in NOISE), printed.err
    assert printed.out.strip().splitlines()[-1].startswith(f"wrote {tmp_path / 'gr00t'}/: 1 episodes")

    assert necessity_main([str(out / "cheese"), str(out / "bread"), "--out", str(tmp_path / "n.md")]) == 0
    assert capfd.readouterr().out.strip().splitlines()[-1] == f"wrote {tmp_path / 'n.md'}"
    report_for([out / "cheese"], progress=True)  # the CLI shows this bar on a terminal
    assert "reading journals: 100%" in capfd.readouterr().err


def test_real_arm_sim_run_shows_trials_and_results_not_library_chatter(tmp_path):
    out = tmp_path / "arm"
    done = _run(["-m", "eval.real_arm", "--robot", "sim_so101", "--policies", "expert", "--families", "none",
                 "--seeds", "1", "--image-size", "32", "--max-steps", "30", "--auto-accept", "--scenarios=-,-",
                 "--out", str(out)], ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    for noise in NOISE:
        assert noise not in done.stderr + done.stdout, (noise, done.stderr)
    assert "=== trial 3/3" in done.stdout and "| expert |" in done.stdout
    assert done.stdout.strip().splitlines()[-1].startswith(f"wrote {out / 'episodes.csv'}")
    assert (out / "logs" / "libraries.log").is_file()


def test_outputs_folder_is_ignored_and_reports_is_not():  # the check above is not vacuous
    assert _git_ignored(Path("outputs/probe_language")) and not _git_ignored(Path("reports/vram.md"))
