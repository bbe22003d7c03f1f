"""Run a study on Ray: demos -> backbone pretraining -> the base's action head -> fine-tunes -> evaluation ->
diagnose -> report.

Every unit of work (one dataset recipe, the backbone, one fine-tune, one evaluation grid, one diagnosis) writes
into its own folder and, last of all, a ``DONE.json`` marker, atomically. Rerunning the same command after a
kill -9 at any moment skips marked units and redoes the rest; a fine-tune resumes from its last checkpoint and a
grid from its last row. A unit that raises is retried once by Ray, then reported in ``study.json``, and units
that depend on it are skipped.

Ray: with no ``address`` a local Ray starts on this machine; with one, the driver joins that cluster and the same
tasks fan out over its nodes (the project must be installed on each). Each task declares its resources, so
fractional GPUs let several fine-tunes share one card.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from leisaac_tasks.atomic import write_text_atomic
from training.study.layout import MARKER, SUPERSEDED, Layout, done_info, eval_seeds, is_done, mark_done, run_name
from training.study.spec import BASE_DATA, StudySpec, spec_to_dict

if TYPE_CHECKING:
    from training.finetune import FinetuneConfig

GENERATION = "generation.json"  # chefmate-generate's account of the datasets a recipe made in its folder


# --- units (each runs in a Ray worker) ----------------------------------------------------------------------------
def _threads(cpus: float) -> None:
    import torch

    torch.set_num_threads(max(1, int(cpus)))


def unit_demos(spec: StudySpec, recipe: str, episodes: int, folder: Path) -> dict:
    from training.demos.generate import GenerateConfig, generate

    _threads(spec.resources.cpus_per_task)
    workers = spec.resources.demo_workers
    # Demos use layout seeds 0, 1, 2, ... (attempt k = seed k); evaluation starts at evaluation.seed_offset.
    # Spread over worker processes, the envs write the same datasets as one env does (tests/test_vector_generate).
    tallies = generate(GenerateConfig(recipe=recipe, out=folder, episodes=episodes, image_size=spec.image_size,
                                      seed=0, resume=folder.exists(), num_envs=4 * workers if workers > 1 else 1,
                                      workers=workers, plan_workers=workers), progress=False)
    attempts = max(t.attempts for t in tallies)  # each dataset's attempt k used layout seed k
    if attempts >= spec.evaluation.seed_offset:
        raise ValueError(f"{folder.name} demos used {attempts} layout seeds, reaching evaluation.seed_offset "
                         f"{spec.evaluation.seed_offset}: raise the offset so evaluation layouts stay held out")
    mark_done(folder, layout_seeds=[0, attempts - 1], datasets=[t.name for t in tallies])
    return {"layout_seeds": [0, attempts - 1]}


def unit_backbone(spec: StudySpec, folder: Path) -> dict:
    from training.captions import CaptionConfig, generate as captions
    from training.pretrain_backbone import PretrainConfig, pretrain

    _threads(spec.resources.cpus_per_task)
    b = spec.backbone
    captions(CaptionConfig(out=folder / "captions", n=b.captions, image_size=spec.image_size,
                           render_size=spec.image_size, overwrite=True), log=lambda *_: None, progress=False)
    result = pretrain(PretrainConfig(captions=folder / "captions", out=folder / "model", preset=spec.preset,
                                     steps=b.steps, batch_size=b.batch_size), log=lambda *_: None, progress=False)
    mark_done(folder, retrieval_after=result.after)
    return {}


def dataset_roots(folder: Path) -> list[Path]:
    """The datasets a recipe wrote into ``folder`` (several are mixed with GR00T's balancing)."""
    info = json.loads((folder / GENERATION).read_text())
    return [folder / name for name in info["datasets"]]


def _train(cfg: "FinetuneConfig", name: str) -> dict:
    """``training.finetune.train``; a compiler or CUDA-graph failure must not cost the run: it finishes eagerly
    from its last checkpoint (same data order and schedule), and DONE.json says so."""
    from training.finetune import train

    began = time.perf_counter()
    compile_error = ""
    try:
        train(cfg, log=lambda *_: None, progress=False)
    except Exception as exc:  # noqa: BLE001
        if not cfg.compile:
            raise
        compile_error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        print(f"{name}: compiled training failed ({compile_error}); finishing it eagerly", flush=True)
        train(replace(cfg, compile=False, resume=cfg.output_dir.exists()), log=lambda *_: None, progress=False)
    return {"seconds": round(time.perf_counter() - began, 1), "compiled": cfg.compile and not compile_error,
            "compile_error": compile_error}


def unit_base(spec: StudySpec, layout: Layout) -> dict:
    """The action head's pretraining: GR00T's default tuning (projector + DiT) on the base recipe's demos."""
    from training.finetune import FinetuneConfig

    _threads(spec.resources.cpus_per_task)
    b, f, out = spec.base, spec.finetune, layout.base / "model"
    cfg = FinetuneConfig(dataset_paths=dataset_roots(layout.data(BASE_DATA)), output_dir=out, preset=spec.preset,
                         backbone_checkpoint=layout.backbone / "model", max_steps=b.steps, batch_size=b.batch_size,
                         learning_rate=f.learning_rate, save_steps=f.save_steps, compile=f.compile,
                         resume=out.exists())
    mark_done(layout.base, **_train(cfg, "base"))
    return {}


def unit_finetune(spec: StudySpec, layout: Layout, data: str, tuning: str, seed: int) -> dict:
    from training.finetune import FinetuneConfig

    _threads(spec.resources.cpus_per_task)
    name = run_name(data, tuning, seed)
    tune = next(t.tune for t in spec.tunings if t.name == tuning)
    # The settings supersede_stale_runs compares against what a finished run recorded: one source for both.
    training = {k: v for k, v in spec.training(data, tuning, seed).items() if k != "tune"}
    f = spec.finetune
    out = layout.model(name)
    start = {"init_checkpoint": layout.base / "model"} if spec.base.episodes else \
        {"backbone_checkpoint": layout.backbone / "model"}
    cfg = FinetuneConfig(dataset_paths=dataset_roots(layout.data(data)), output_dir=out, preset=spec.preset,
                         tune=tune, save_steps=f.save_steps, compile=f.compile, resume=out.exists(), **training,
                         **start)
    # How many demos it learned from: a data condition given more demos later trains its runs again.
    mark_done(out, machine=machine(), demos=recorded_demos(layout.data(data)), **_train(cfg, name))
    return {}


def unit_eval(spec: StudySpec, layout: Layout, name: str) -> dict:
    from eval.run_matrix import MatrixConfig, run
    from leisaac_tasks.scenarios import SEED_SCENARIOS, Scenario

    _threads(spec.resources.cpus_per_task)
    e = spec.evaluation
    out = layout.grid(name)
    scenarios = tuple(Scenario.parse(s) for s in e.scenarios) or SEED_SCENARIOS
    run(MatrixConfig(policies=(f"vla:{layout.model(name)}",), scenarios=scenarios, families=e.families,
                     seeds=eval_seeds(spec), backend=e.backend, image_size=spec.image_size, max_steps=e.max_steps,
                     out=out, resume=True, num_envs=e.num_envs), progress=False, argv=["chefmate-study"])
    mark_done(out, machine=machine())  # a lease may only train: the CPU box then evaluates
    return {}


def unit_diagnose(spec: StudySpec, layout: Layout, name: str, data: str) -> dict:
    from training.diagnose import DiagnoseConfig, diagnose

    _threads(spec.resources.cpus_per_task)
    out = layout.diagnosis(name)
    # Competence and the closed-loop metrics come from this run's evaluation grid, not a second grid.
    diagnose(DiagnoseConfig(policy=f"vla:{layout.model(name)}", out=out,
                            datasets=tuple(dataset_roots(layout.data(data))), seeds=spec.diagnose_seeds,
                            episodes=layout.episodes(name)), log=lambda *_: None)
    mark_done(out, machine=machine())
    return {}


# --- the driver ---------------------------------------------------------------------------------------------------
@dataclass
class Task:
    key: str  # e.g. "finetune:seed__gr00t_default__s0"
    folder: Path
    fn: Callable[..., dict]
    args: tuple
    gpus: float
    needs: tuple[str, ...] = ()
    # Already served: a fine-tune whose evaluation and diagnosis are done needs no model (e.g. those results were
    # carried over from another machine without the checkpoints).
    served_by: tuple[Path, ...] = ()
    cpus: float | None = None  # None: the spec's cpus_per_task
    # What later units load from this one: a marker restored without it (results carried back, weights left on
    # the GPU box) does not count as done.
    output: Path | None = None

    @property
    def stage(self) -> str:
        return self.key.split(":", 1)[0]

    def done(self) -> bool:
        made = is_done(self.folder) and (self.output is None or self.output.exists())
        return made or bool(self.served_by) and all(is_done(f) for f in self.served_by)


class Progress:
    """One line per finished unit and per stage: readable in a log file as on a terminal."""

    def __init__(self, log: Callable[[str], None]):
        self.log = log

    def stage(self, name: str, todo: int, done: int) -> None:
        self.log(f"[{name}] {done} already done, {todo} to run")

    def finished(self, stage: str, key: str, seconds: float, n: int, total: int) -> None:
        self.log(f"[{stage}] {n}/{total} {key.split(':', 1)[1] or key} done in {seconds:.0f} s")

    def failed(self, stage: str, key: str, error: str) -> None:
        self.log(f"[{stage}] FAILED {key} after a retry: {error}")


def run_tasks(ray, tasks: list[Task], stages: tuple[str, ...], cpus_per_task: float, failed: dict[str, str],
              progress: Progress, on_time: Callable[[dict[str, float]], None] = lambda _: None) -> None:
    """Run every unfinished task of the chosen stages as soon as the tasks it needs are done, so stages overlap
    (a model is evaluated while others still train). ``on_time`` gets each stage's wall seconds so far (first start
    to last end; 0 for a stage with nothing to run) after every finished task."""
    done = {t.key for t in tasks if t.done()}
    todo = [t for t in tasks if t.key not in done and t.stage in stages]
    for stage in dict.fromkeys(t.stage for t in tasks if t.stage in stages):
        ours = [t for t in tasks if t.stage == stage]
        progress.stage(stage, sum(t in todo for t in ours), sum(t.key in done for t in ours))
    totals = {stage: sum(t.stage == stage for t in todo) for stage in stages}
    counts = dict.fromkeys(stages, 0)
    spans: dict[str, list[float]] = {}
    planned = {t.key for t in todo}
    waiting, pending = list(todo), {}
    total_cpus = ray.cluster_resources().get("CPU", 1.0)  # no task may ask for more: it would wait forever
    while waiting or pending:
        for t in list(waiting):
            missing = [n for n in t.needs if n not in done]
            if any(n in failed or n not in planned for n in missing):
                waiting.remove(t)  # a need failed, or is neither done nor going to run (a stage left out)
                failed[t.key] = "skipped: " + ", ".join(f"{n} {'failed' if n in failed else 'not done'}"
                                                         for n in missing)
            elif not missing:
                waiting.remove(t)
                cpus = min(cpus_per_task if t.cpus is None else t.cpus, total_cpus)
                remote = ray.remote(num_cpus=cpus, num_gpus=t.gpus, max_retries=1, retry_exceptions=True)(t.fn)
                pending[remote.remote(*t.args)] = (t, time.perf_counter())
                spans.setdefault(t.stage, [time.perf_counter(), time.perf_counter()])
        if not pending:
            continue
        ready, _ = ray.wait(list(pending), num_returns=1)
        t, started = pending.pop(ready[0])
        counts[t.stage] += 1
        spans[t.stage][1] = time.perf_counter()
        try:
            ray.get(ready[0])
            done.add(t.key)
            progress.finished(t.stage, t.key, time.perf_counter() - started, counts[t.stage], totals[t.stage])
        except Exception as exc:  # already retried once by Ray
            error = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else type(exc).__name__
            failed[t.key] = error
            progress.failed(t.stage, t.key, error)
        on_time({stage: end - start for stage, (start, end) in spans.items()})
    on_time({stage: end - start for stage, (start, end) in spans.items()})


def machine() -> str:
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return f"CPU ({os.cpu_count()} cores, {platform.machine()})"


def _start_ray(address: str | None, cpus: float):
    import ray

    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR",
                              "configure_logging": True}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=max(int(cpus), 1), **kwargs)
    return ray


STAGES = ("demos", "backbone", "base", "finetune", "evaluate", "diagnose", "report")


def recorded_training(model: Path) -> dict[str, Any] | None:
    """A finished fine-tune's training as its config.json records it, in ``StudySpec.training``'s keys."""
    config = model / "config.json"
    if not config.exists():
        return None
    meta = json.loads(config.read_text())
    run = meta.get("run", {})
    return {"max_steps": run.get("max_steps"), "batch_size": run.get("batch_size"),
            "learning_rate": run.get("learning_rate"), "seed": run.get("seed"), "tune": meta.get("tune")}


def recorded_demos(folder: Path) -> int | None:
    """How many demos a data condition's finished datasets hold (the fewest of its datasets; each has the spec's
    ``episodes``); None where none were made here."""
    info = folder / GENERATION
    if not info.exists():
        return None
    return min(d["kept"] for d in json.loads(info.read_text())["datasets"].values())


def supersede_stale_runs(spec: StudySpec, layout: Layout, log: Callable[[str], None]) -> list[str]:
    """Runs trained for another version of the spec (e.g. a condition given more steps or demos after it failed the
    competence gate) are moved aside, results and all, so they are trained again and never mixed into the table.
    Demos made for fewer episodes than the spec asks are made up to it (same layout seeds, more of them). Every run
    of the spec is checked, whatever seeds this sitting runs. Nothing is deleted."""
    for d in spec.data:
        made = recorded_demos(layout.data(d.name))
        if is_done(layout.data(d.name)) and made is not None and made != d.episodes:
            (layout.data(d.name) / MARKER).unlink()  # the datasets stay: generating resumes from them
            log(f"[demos] {d.name} holds {made} demos a dataset, the spec asks {d.episodes}: made up to it")
    moved = []
    for data, tuning, seed in spec.run_ids():
        name = run_name(data, tuning, seed)
        recorded = recorded_training(layout.model(name))
        wanted = spec.training(data, tuning, seed)
        demos = done_info(layout.model(name)).get("demos")
        episodes = next(d.episodes for d in spec.data if d.name == data)
        if recorded is None or recorded == wanted and demos in (None, episodes):  # None: not recorded then
            continue
        k = 1
        while layout.run(f"{name}{SUPERSEDED}{k}").exists():
            k += 1
        layout.run(name).rename(layout.run(f"{name}{SUPERSEDED}{k}"))
        changed = [f"{key} {recorded[key]} -> {wanted[key]}" for key in wanted if recorded[key] != wanted[key]]
        changed += [f"demos {demos} -> {episodes}"] if demos not in (None, episodes) else []
        log(f"[finetune] {name} was trained with {', '.join(changed)}: moved to runs/{name}{SUPERSEDED}{k}, "
            f"to run again")
        moved.append(name)
    return moved


def run_study(spec: StudySpec, out: Path, address: str | None = None, log: Callable[[str], None] = print,
              stages: tuple[str, ...] = STAGES, seeds: tuple[int, ...] | None = None,
              data: tuple[str, ...] | None = None, tunings: tuple[str, ...] | None = None) -> Path:
    """Run the named stages (all by default) for the given training seeds, data conditions and tunings (all by
    default). A subset lets the work run on different machines or in several sittings, e.g. the demos on a many-core
    CPU box, seeds 0-1 in one GPU lease and seed 2 in the next, with the study folder (checkpoints left behind)
    carried between them. The report always covers every run that has finished."""
    import torch

    from training.study.report import write_report

    layout = Layout(Path(out))
    layout.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(layout.out / "spec.json", json.dumps(spec_to_dict(spec), indent=2))
    gpu = torch.cuda.is_available()
    res = spec.resources
    ray = _start_ray(address, os.cpu_count() or 1)
    progress = Progress(log)
    failed: dict[str, str] = {}
    supersede_stale_runs(spec, layout, log)
    timings_path = layout.out / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    runs = [r for r in spec.run_ids() if (seeds is None or r[2] in seeds) and (data is None or r[0] in data)
            and (tunings is None or r[1] in tunings)]
    demos = [(BASE_DATA, spec.base.recipe, spec.base.episodes)] if spec.base.episodes else []
    demos += [(d.name, d.recipe, d.episodes) for d in spec.data]  # the base's first: every fine-tune waits on it
    # A demos marker restored without its datasets (collect brings markers only) is not finished demos.
    tasks = [Task(f"demos:{name}", layout.data(name), unit_demos, (spec, recipe, episodes, layout.data(name)), 0.0,
                  cpus=res.demo_workers, output=layout.data(name) / GENERATION)
             for name, recipe, episodes in demos]
    tasks.append(Task("backbone:", layout.backbone, unit_backbone, (spec, layout.backbone),
                      res.finetune_gpus if gpu else 0.0, output=layout.backbone / "model"))
    start = ("backbone:",)
    if spec.base.episodes:
        tasks.append(Task("base:", layout.base, unit_base, (spec, layout), res.finetune_gpus if gpu else 0.0,
                          (f"demos:{BASE_DATA}", "backbone:"), output=layout.base / "model"))
        start = ("base:",)
    for r in runs:
        name = run_name(*r)
        tasks += [
            Task(f"finetune:{name}", layout.model(name), unit_finetune, (spec, layout, *r),
                 res.finetune_gpus if gpu else 0.0, (f"demos:{r[0]}", *start),
                 served_by=(layout.grid(name), layout.diagnosis(name))),
            Task(f"evaluate:{name}", layout.grid(name), unit_eval, (spec, layout, name),
                 res.eval_gpus if gpu else 0.0, (f"finetune:{name}",)),
            Task(f"diagnose:{name}", layout.diagnosis(name), unit_diagnose, (spec, layout, name, r[0]),
                 res.eval_gpus if gpu else 0.0, (f"evaluate:{name}",)),
        ]
    earlier = {stage: timings.get(stage, 0.0) for stage in STAGES[:-1] if stage in stages}

    def record(now: dict[str, float]) -> None:  # written as it goes, so a killed run keeps what it spent
        timings.update({stage: round(wall + now.get(stage, 0.0), 1) for stage, wall in earlier.items()})
        write_text_atomic(timings_path, json.dumps(timings, indent=2))  # read back on resume: never torn

    try:
        run_tasks(ray, tasks, stages, res.cpus_per_task, failed, progress, record)
    finally:
        ray.shutdown()
    if "report" not in stages:
        return layout.out
    log("[report] writing summary.csv, runs.csv, study.json, figures and report.html")
    began = time.perf_counter()
    write_report(spec, layout, failed, timings, machine(), fractional_gpus=res.finetune_gpus if gpu else 0.0)
    timings["report"] = round(timings.get("report", 0.0) + time.perf_counter() - began, 1)
    write_text_atomic(timings_path, json.dumps(timings, indent=2))
    log(f"wrote {layout.out / 'summary.csv'}, {layout.out / 'study.json'} and {layout.out / 'report.html'}")
    return layout.out
