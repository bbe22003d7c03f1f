"""chefmate-study end to end at toy scale on local Ray: a bad spec is one error before anything runs; a kill -9
mid-study loses nothing finished, and the rerun completes the report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eval.metrics import MetricValue
from training.study.report import hierarchical
from training.study.spec import SpecError, load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "studies" / "smoke.yaml"


def _cli() -> list[str]:
    return [str(Path(sys.executable).parent / "chefmate-study")]


def test_both_shipped_specs_parse():
    smoke, full = load_spec(SMOKE), load_spec(ROOT / "studies" / "seed_diagnosis.yaml")
    assert len(full.run_ids()) == 30 and full.seeds == (0, 1, 2)
    assert {t.name for t in full.tunings} == {"seed_lora", "gr00t_default", "llm_lora", "llm_vit_lora", "full"}
    seed_lora = next(t.tune for t in full.tunings if t.name == "seed_lora")
    assert seed_lora.lora_mode == "action_head" and seed_lora.lora_rank == 32
    assert smoke.preset == "tiny" and len(smoke.run_ids()) == 4
    # The GPU box's smoke is the CI smoke on the long run's code paths (compiled, vector grid, fractional GPUs).
    gpu = load_spec(ROOT / "studies" / "smoke_gpu.yaml")
    assert gpu.finetune.compile == full.finetune.compile is True and gpu.finetune.max_steps == smoke.finetune.max_steps
    assert gpu.evaluation.num_envs > 0 and full.evaluation.num_envs > 0 and gpu.data == smoke.data
    assert gpu.resources.finetune_gpus == full.resources.finetune_gpus and gpu.resources.demo_workers > 1


def test_extends_changes_only_the_named_fields_and_refuses_a_loop(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\nname: a\nfinetune: {compile: true}\n")
    (tmp_path / "b.yaml").write_text(SMOKE.read_text())
    a = load_spec(tmp_path / "a.yaml")
    b = load_spec(tmp_path / "b.yaml")
    assert a.name == "a" and a.finetune == replace(b.finetune, compile=True) and a.tunings == b.tunings
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(SpecError, match="extends itself"):
        load_spec(tmp_path / "a.yaml")


@pytest.mark.parametrize("raw, message", [
    ({"name": "x", "data": {"a": {"recipe": "nope"}}, "tunings": {"t": {}}}, "is not a recipe"),
    ({"name": "x", "data": {"a": {"recipe": "seed"}}, "tunings": {"t": {"lora_rnak": 4}}}, "unknown field(s) lora_rnak"),
    ({"name": "x", "data": {"a": {"recipe": "seed"}}, "tunings": {"t": {}}, "seeds": "0"}, "seeds must be"),
    ({"name": "x", "data": {"a": {"recipe": "seed"}}, "tunings": {"t": {}}, "finetun": {}}, "unknown section(s)"),
    ({"name": "x", "data": {"a": {"recipe": "seed"}}, "tunings": {"t": {"lora_full_model": True}}}, "--lora-rank"),
    ({"name": "x", "tunings": {"t": {}}}, "missing 'data'"),
    ({"name": "x", "data": {"a": {"recipe": "seed"}}, "tunings": {"t": {}}, "resources": {"demo_workers": 0}},
     "demo_workers must be at least 1"),
])
def test_a_bad_spec_is_one_clear_error(raw, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_spec(raw)


def test_the_cli_refuses_a_bad_spec_before_anything_runs(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndata: {a: {recipe: seed, episodez: 3}}\ntunings: {t: {}}\n")
    proc = subprocess.run([*_cli(), "--spec", str(bad), "--out", str(tmp_path / "out")], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and "unknown field(s) episodez" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_hierarchical_bootstrap_resamples_training_seeds():
    # Two seeds whose episode-level replicates are constant (0.2 and 0.8): the spread left is between seeds.
    a = MetricValue(0.2, 0.2, 0.2, 10, np.full(1000, 0.2))
    b = MetricValue(0.8, 0.8, 0.8, 10, np.full(1000, 0.8))
    point, lo, hi = hierarchical([a, b])
    assert point == pytest.approx(0.5) and lo == pytest.approx(0.2) and hi == pytest.approx(0.8)
    assert np.isnan(hierarchical([MetricValue(0.5, float("nan"), float("nan"), 3)])[1])  # no CI without seeds


def _markers(out: Path) -> dict[str, float]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("DONE.json")}


def _ray_workers() -> set[str]:
    return set(subprocess.run(["pgrep", "-f", "ray::"], capture_output=True, text=True).stdout.split())


def test_smoke_study_survives_kill_9_and_finishes_without_redoing_work(tmp_path):
    others = _ray_workers()  # another Ray job on this machine is not this study's leftover
    out = tmp_path / "smoke"
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    proc = subprocess.Popen([*_cli(), "--spec", str(SMOKE), "--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    deadline = time.time() + 400
    while time.time() < deadline and not list((out / "runs").glob("*/model/DONE.json")):
        time.sleep(1)
    assert proc.poll() is None, "the study ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its local Ray, all at once
    proc.wait()
    before = _markers(out)
    assert any("model" in k for k in before)

    done = subprocess.run([*_cli(), "--spec", str(SMOKE), "--out", str(out)], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    after = _markers(out)
    assert {k: after[k] for k in before} == before  # nothing finished before the kill ran again
    assert len([k for k in after if k.endswith("model/DONE.json")]) == 4

    summary = pd.read_csv(out / "summary.csv", keep_default_na=False)
    assert list(summary.columns[:3]) == ["data", "tuning", "n_seeds"]
    for column in ("success", "success_act", "success_refrain", "language_sensitivity", "wording_sensitivity",
                   "negation_compliance", "heuristic_agreement"):
        assert {column, f"{column}_lo", f"{column}_hi"} <= set(summary.columns)
    assert {"action_sensitivity_differ", "text_probe_accuracy"} <= set(summary.columns)
    assert len(summary) == 4 and (summary["n_seeds"] == 1).all()
    assert len(pd.read_csv(out / "runs.csv")) == 4
    study = json.loads((out / "study.json").read_text())
    assert study["machine"].startswith("CPU") and set(study["wall_seconds"]) >= {"demos", "finetune", "evaluate"}
    assert study["evaluated_on"] == study["machine"]  # the evaluations name where they ran
    # Tiny models trained for 4 steps can't do the task: the gate holds and no verdict about language is drawn.
    assert study["competence_gate_passed"] is False
    assert study["answer"]["verdict"].startswith("inconclusive: not competent")
    assert study["evaluation_layout_seeds"][0] > max(max(v) for v in study["demo_layout_seeds"].values())
    # Every fine-tune started from the one base model (backbone + pretrained action head), as GR00T's from N1.5.
    assert "base" in study["demo_layout_seeds"] and study["fine_tunes_start_from"].startswith("a base model")
    starts = {json.loads(p.read_text())["run"]["init_checkpoint"] for p in (out / "runs").glob("*/model/config.json")}
    assert starts == {str(out / "base" / "model")}
    assert (out / "report.html").stat().st_size > 10_000 and (out / "language_sensitivity.png").exists()
    leftover = sorted(_ray_workers() - others)
    assert not leftover, f"Ray workers left running: {leftover}"

    # A lease that only trains: its fine-tunes' weights come back (gpu_box.sh collect-weights models, receive) to a
    # folder holding the demos, and evaluated there they give the very episodes evaluated where they were trained.
    import shutil

    here, trained_only = tmp_path / "here", tmp_path / "box"  # the box's runs as a lease that stopped at finetune
    shutil.copytree(out / "runs", trained_only / "runs", ignore=shutil.ignore_patterns("eval", "diagnose"))
    box = {**env, "GPU_BOX_STUDY": str(trained_only), "GPU_BOX_WEIGHTS": str(tmp_path / "w")}
    gpu_box = str(ROOT / "scripts" / "gpu_box.sh")
    subprocess.run(["bash", gpu_box, "collect-weights", str(tmp_path / "back"), "0", "models"], env=box, check=True,
                   capture_output=True)
    subprocess.run(["bash", gpu_box, "receive", str(tmp_path / "back"), str(here)], check=True, capture_output=True)
    shutil.copytree(out / "data", here / "data")
    evaluated = subprocess.run([*_cli(), "--spec", str(SMOKE), "--out", str(here), "--stages", "evaluate,report"],
                               capture_output=True, text=True, env=env, timeout=600)
    assert evaluated.returncode == 0, evaluated.stdout[-2000:] + evaluated.stderr[-2000:]
    for grid in (out / "runs").glob("*/eval"):
        rows = [pd.read_csv(g / "episodes.csv").drop(columns=["policy", "wall_seconds"])  # the folder, the clock
                for g in (grid, here / "runs" / grid.parent.name / "eval")]
        pd.testing.assert_frame_equal(rows[1], rows[0])
    assert json.loads((here / "study.json").read_text())["evaluated_on"] == study["machine"]

    # Results carried over without their checkpoints (a GPU box's models stay behind): nothing is retrained.

    for model in (out / "runs").glob("*/model"):
        shutil.rmtree(model)
    again = subprocess.run([*_cli(), "--spec", str(SMOKE), "--out", str(out), "--stages", "finetune,evaluate,report"],
                           capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "[finetune] 4 already done, 0 to run" in again.stdout
    assert not list((out / "runs").glob("*/model")) and len(pd.read_csv(out / "runs.csv")) == 4


def test_effect_is_the_difference_of_two_conditions_with_its_hierarchical_ci():
    from training.study.report import effect

    def seeds(*values):
        return [MetricValue(v, v, v, 10, np.full(1000, v)) for v in values]

    reps = {("balanced", "t", "language_sensitivity"): seeds(0.8, 0.8),
            ("seed", "t", "language_sensitivity"): seeds(0.1, 0.3)}
    e = effect(reps, None, ("balanced", "t"), ("seed", "t"))
    assert e["value"] == pytest.approx(0.6)
    assert e["lo"] == pytest.approx(0.5) and e["hi"] == pytest.approx(0.7)  # seed-level spread of the seed data


@pytest.mark.parametrize("flags, says", [(["--stages", "demos,train"], "train is not a stage"),
                                         (["--seeds", "0,7"], "subset of the spec's seeds"),
                                         (["--seeds", "zero"], "subset of the spec's seeds"),
                                         (["--tunings", "full"], "subset of the spec's tunings seed_lora,"),
                                         (["--data", "all"], "subset of the spec's data seed,")])
def test_bad_stages_or_seeds_are_one_clear_line_before_anything_runs(flags, says, tmp_path, capsys):
    from training.study.cli import main

    assert main(["--spec", str(SMOKE), "--out", str(tmp_path / "o"), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0] and not (tmp_path / "o").exists()


def test_a_lease_can_train_part_of_a_row(tmp_path):
    """--data and --tunings narrow this run to those fine-tunes (a lease too short for a whole seed); the units
    that need what this run does not make are reported, not waited for. A demos marker that came back without its
    datasets (collect brings markers only) does not count as demos made."""
    out = tmp_path / "o"
    (out / "data" / "balanced").mkdir(parents=True)
    (out / "data" / "balanced" / "DONE.json").write_text('{"layout_seeds": [0, 3], "datasets": ["all"]}')
    done = subprocess.run([*_cli(), "--spec", str(SMOKE), "--out", str(out), "--stages", "finetune,report",
                           "--data", "balanced", "--tunings", "gr00t_default"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "[finetune] 0 already done, 1 to run" in done.stdout
    assert "FAILED" not in done.stdout and not (out / "runs").exists()
    failures = json.loads((out / "study.json").read_text())["failures"]
    assert failures == {"finetune:balanced__gr00t_default__s0": "skipped: demos:balanced not done, base: not done"}


def test_a_compiled_finetune_that_fails_is_finished_eagerly_and_says_so(tmp_path, monkeypatch):
    """CUDA graphs can fail where eager works: the run is finished eagerly from its checkpoint, not lost."""
    import training.finetune as finetune
    from training.study import runner
    from training.study.layout import Layout

    smoke = load_spec(SMOKE)
    spec = replace(smoke, finetune=replace(smoke.finetune, compile=True))
    calls = []

    def train(cfg, log, progress):
        calls.append((cfg.compile, cfg.resume))
        if cfg.compile:
            cfg.output_dir.mkdir(parents=True)
            raise RuntimeError("CUDA graphs: an op this driver lacks\nmore detail")

    monkeypatch.setattr(finetune, "train", train)
    monkeypatch.setattr(runner, "dataset_roots", lambda folder: [tmp_path / "data"])
    layout = Layout(tmp_path / "study")
    data, tuning = spec.data[0].name, spec.tunings[0].name
    runner.unit_finetune(spec, layout, data, tuning, 0)
    assert calls == [(True, False), (False, True)]
    done = json.loads((layout.model(runner.run_name(data, tuning, 0)) / "DONE.json").read_text())
    assert done["compiled"] is False and done["compile_error"] == "RuntimeError: CUDA graphs: an op this driver lacks"


def test_a_write_killed_midway_leaves_the_previous_timings_whole(tmp_path, monkeypatch):
    """The study reads timings.json and DONE.json back when it resumes; a kill -9 during a plain write_text left
    an empty timings.json once and the resumed study crashed on it (CI of 2026-12-05)."""
    from leisaac_tasks.atomic import write_text_atomic

    target = tmp_path / "timings.json"
    write_text_atomic(target, json.dumps({"finetune": 12.5}))
    real_write = Path.write_text

    def killed_midway(self: Path, text: str, *args, **kwargs) -> int:
        real_write(self, text[: len(text) // 2])
        raise KeyboardInterrupt  # stands for the kill: the process stops with half the bytes written

    monkeypatch.setattr(Path, "write_text", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(target, json.dumps({"finetune": 99.0, "evaluate": 3.0}))
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"finetune": 12.5}


def test_the_study_makes_demos_in_worker_processes_that_equal_one_process(tmp_path):
    """The GPU box makes the study's demos on its 16 cores (resources.demo_workers processes per recipe); the
    datasets must be the ones a single process writes. CI's smoke study spawns the workers from a Ray worker."""
    from test_vector_generate import _frames, _journal
    from training.study.runner import unit_demos

    spec = load_spec(SMOKE)
    assert spec.resources.demo_workers > 1
    unit_demos(spec, "seed", 2, tmp_path / "workers")
    unit_demos(replace(spec, resources=replace(spec.resources, demo_workers=1)), "seed", 2, tmp_path / "one")
    for part in ("cheese", "bread"):
        one, workers = tmp_path / "one" / part, tmp_path / "workers" / part
        assert _journal(workers) == _journal(one)
        for column, values in _frames(one).items():
            np.testing.assert_array_equal(_frames(workers)[column], values, err_msg=f"{part} {column}")


def test_the_committed_study_table_is_what_its_committed_episodes_give(tmp_path):
    """reports/study/ came back from a GPU box without models or demos; the report stage, rerun here on the CPU,
    must rebuild the same table from its episodes and diagnoses, and keep naming the GPU the runs trained on."""
    import shutil

    committed = ROOT / "reports" / "study"
    out = tmp_path / "study"
    shutil.copytree(committed, out)
    # The spec the results were produced with, as the study wrote it (studies/ may have moved on since).
    done = subprocess.run([*_cli(), "--spec", str(committed / "spec.json"), "--out", str(out),
                           "--stages", "report"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (out / "summary.csv").read_text() == (committed / "summary.csv").read_text()
    assert (out / "runs.csv").read_text() == (committed / "runs.csv").read_text()
    study, before = (json.loads((d / "study.json").read_text()) for d in (out, committed))
    assert study["machine"] == before["machine"] and "H100" in study["machine"]
    assert {k: v for k, v in study.items() if k != "wall_seconds" and k != "wall_minutes_total"} == \
        {k: v for k, v in before.items() if k != "wall_seconds" and k != "wall_minutes_total"}


def test_runs_trained_for_an_earlier_spec_are_moved_aside_and_left_out_of_the_table(tmp_path):
    """A condition that failed the competence gate gets more steps; its finished runs (results carried back, no
    weights) were trained for the old spec, so they must run again and never be mixed into the new table. They
    are moved, not deleted; the other condition's runs stay done."""
    import shutil

    out = tmp_path / "study"
    shutil.copytree(ROOT / "reports" / "study", out)
    raw = json.loads((out / "spec.json").read_text())
    steps = raw["data"]["balanced"]["max_steps"]
    raw["data"]["balanced"]["max_steps"] = steps + 2000
    (tmp_path / "longer.json").write_text(json.dumps(raw))
    trained = sorted(p.name for p in (out / "runs").glob("balanced__*") if "superseded" not in p.name)
    assert trained  # the committed study has balanced runs of the current spec
    earlier = set((out / "runs").glob("*.superseded-*"))
    done = subprocess.run([*_cli(), "--spec", str(tmp_path / "longer.json"), "--out", str(out), "--stages",
                           "finetune,report"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stdout.count(f"max_steps {steps} -> {steps + 2000}: moved to runs/balanced__") == len(trained)
    served = sorted(p.name for p in (out / "runs").glob("seed__*") if "superseded" not in p.name)
    assert f"[finetune] {len(served)} already done, {30 - len(served)} to run" in done.stdout  # seed's stay served
    moved = set((out / "runs").glob("*.superseded-*")) - earlier
    assert sorted(m.name.split(".")[0] for m in moved) == trained
    assert earlier <= set((out / "runs").glob("*.superseded-*"))  # nothing moved earlier is overwritten
    assert all(list((m / "eval").glob("episodes.csv*")) for m in moved)  # as written, or gzipped as committed
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False)
    assert (summary[summary.data == "balanced"]["n_seeds"] == 0).all()
    assert (summary[summary.data == "seed"]["n_seeds"] == len(served) // 5).all()


def test_a_condition_given_more_demos_makes_them_up_and_trains_its_runs_again(tmp_path):
    """A condition that failed the gate gets more demos: its datasets are made up to the new count (its marker
    goes, the datasets stay for generating to resume from), and its runs, trained on fewer, are moved aside. A run
    of another condition, or one from before runs recorded their demos, stays."""
    from training.study.layout import Layout, mark_done, run_name
    from training.study.runner import supersede_stale_runs

    smoke = load_spec(SMOKE)
    spec = replace(smoke, data=tuple(replace(d, episodes=3) if d.name == "balanced" else d for d in smoke.data))
    layout = Layout(tmp_path)
    for d in smoke.data:
        layout.data(d.name).mkdir(parents=True)
        (layout.data(d.name) / "generation.json").write_text(json.dumps({"datasets": {"x": {"kept": d.episodes}}}))
        mark_done(layout.data(d.name))
    runs = {}
    for data, demos in (("balanced", 1), ("seed", 1), ("balanced", None)):
        tuning = "seed_lora" if demos is None else "gr00t_default"
        name = run_name(data, tuning, 0)
        wanted = spec.training(data, tuning, 0)
        layout.model(name).mkdir(parents=True)
        (layout.model(name) / "config.json").write_text(json.dumps(
            {"tune": wanted["tune"], "run": {k: v for k, v in wanted.items() if k != "tune"}}))
        mark_done(layout.model(name), **({} if demos is None else {"demos": demos}))
        runs[name] = demos
    said = []
    moved = supersede_stale_runs(spec, layout, said.append)
    assert moved == ["balanced__gr00t_default__s0"]
    assert said == ["[demos] balanced holds 1 demos a dataset, the spec asks 3: made up to it",
                    "[finetune] balanced__gr00t_default__s0 was trained with demos 1 -> 3: moved to "
                    "runs/balanced__gr00t_default__s0.superseded-1, to run again"]
    assert not (layout.data("balanced") / "DONE.json").exists() and (layout.data("balanced") / "generation.json").exists()
    assert (layout.data("seed") / "DONE.json").exists()
    assert (layout.model("seed__gr00t_default__s0") / "DONE.json").exists()
    assert (layout.model("balanced__seed_lora__s0") / "DONE.json").exists()


def test_what_a_lease_brought_back_is_kept_small_and_reads_the_same(tmp_path):
    """A run collected from the box replaces the committed one with the files the report reads (episodes gzipped,
    the same rows); figures and checkpoint configs stay out; committed runs that did not come back stay."""
    import gzip
    import shutil
    import tarfile

    from training.study.keep import RUN_FILES, main as keep_main

    committed = ROOT / "reports" / "study"
    back = tmp_path / "back"  # what collect brings: a study folder with a run trained again, plus extras
    name = "seed__full__s0"
    shutil.copytree(committed / "runs" / name, back / "runs" / name)
    restored = "seed__full__s1"  # restored on the box from these results, not trained again
    shutil.copytree(committed / "runs" / restored, back / "runs" / restored)
    run = back / "runs" / name
    with gzip.open(run / "eval" / "episodes.csv.gz") as f:
        rows = f.read()
    (run / "eval" / "episodes.csv.gz").unlink()
    (run / "eval" / "episodes.csv").write_bytes(rows)  # as the grid writes it
    for extra in ("eval/heatmap.png", "model/checkpoint-2000/config.json", "diagnose/counterfactual_pairs.json"):
        (run / extra).parent.mkdir(parents=True, exist_ok=True)
        (run / extra).write_text("{}")
    with tarfile.open(tmp_path / "study_results.tgz", "w:gz") as tar:
        tar.add(back, arcname=".")

    dest = tmp_path / "study"
    shutil.copytree(committed, dest)
    (dest / "runs" / name / "eval" / "stale.txt").write_text("from the run before")
    assert keep_main([str(tmp_path), str(dest)]) == 0
    kept = sorted(str(p.relative_to(dest / "runs" / name)) for p in (dest / "runs" / name).rglob("*") if p.is_file())
    assert kept == sorted({f"{unit}/{f}.gz" if f == "episodes.csv" else f"{unit}/{f}"
                           for unit, names in RUN_FILES.items() for f in names})
    with gzip.open(dest / "runs" / name / "eval" / "episodes.csv.gz") as f:
        assert f.read() == rows
    # A run the lease restored from the committed results comes back with its episodes gzipped, and keeps them.
    restored_back = (back / "runs" / restored / "eval" / "episodes.csv.gz").read_bytes()
    assert (dest / "runs" / restored / "eval" / "episodes.csv.gz").read_bytes() == restored_back
    # The same rows give the same gzipped bytes: keeping twice changes nothing in git.
    assert (dest / "runs" / name / "eval" / "episodes.csv.gz").read_bytes() == \
        (committed / "runs" / name / "eval" / "episodes.csv.gz").read_bytes()
    others = {p.name for p in (committed / "runs").iterdir()}
    assert {p.name for p in (dest / "runs").iterdir()} == others


def test_a_restored_run_that_came_back_without_its_episodes_keeps_the_committed_ones(tmp_path):
    """Results collected before collect brought .csv.gz files hold restored runs without episodes: the same
    evaluation marker keeps the committed episodes; another evaluation without episodes keeps none."""
    import shutil

    from training.study.keep import keep_run

    committed = ROOT / "reports" / "study" / "runs" / "seed__full__s0"
    back = tmp_path / "back"
    shutil.copytree(committed, back, ignore=shutil.ignore_patterns("episodes.csv.gz"))
    dest = tmp_path / "dest"
    shutil.copytree(committed, dest)
    keep_run(back, dest)
    assert (dest / "eval" / "episodes.csv.gz").read_bytes() == (committed / "eval" / "episodes.csv.gz").read_bytes()

    (back / "eval" / "DONE.json").write_text('{"evaluated": "again"}')
    keep_run(back, dest)
    assert not (dest / "eval" / "episodes.csv.gz").exists()

    # Both forms in one run: the episodes.csv that Layout.episodes reads is the one kept.
    import gzip

    (back / "eval" / "episodes.csv").write_text("fresh\n")
    with gzip.open(back / "eval" / "episodes.csv.gz", "wb") as f:
        f.write(b"stale\n")
    keep_run(back, dest)
    with gzip.open(dest / "eval" / "episodes.csv.gz") as f:
        assert f.read() == b"fresh\n"


def test_a_committed_run_the_lease_moved_aside_is_moved_aside_here_too(tmp_path):
    """The lease moved a committed run aside (trained for an older spec) and did not train it again: keep moves the
    committed copy aside under the lease's name, so the report leaves it out and no second copy appears. A run
    moved aside on the box that is not the committed one (another training) leaves the committed run where it is."""
    import shutil

    from training.study.keep import keep

    committed = ROOT / "reports" / "study" / "runs" / "seed__full__s0"
    dest, back = tmp_path / "dest", tmp_path / "back"
    for name in ("seed__full__s0", "seed__full__s1"):
        shutil.copytree(committed, dest / "runs" / name)
    shutil.copytree(committed, back / "runs" / "seed__full__s0.superseded-1")
    shutil.copytree(committed, back / "runs" / "seed__full__s1.superseded-2")
    (back / "runs" / "seed__full__s1.superseded-2" / "model" / "DONE.json").write_text('{"trained": "elsewhere"}')
    keep(back, dest)
    assert sorted(p.name for p in (dest / "runs").iterdir()) == \
        ["seed__full__s0.superseded-1", "seed__full__s1", "seed__full__s1.superseded-2"]
    moved = dest / "runs" / "seed__full__s0.superseded-1" / "eval" / "episodes.csv.gz"
    assert moved.read_bytes() == (committed / "eval" / "episodes.csv.gz").read_bytes()


def test_keeping_nothing_is_one_clear_line(tmp_path, capsys):
    from training.study.keep import main as keep_main

    with pytest.raises(SystemExit) as exit_:
        keep_main([str(tmp_path), str(tmp_path / "dest")])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"{tmp_path} holds no runs: pass the folder collect wrote (study_results.tgz) or a study's --out folder")
