"""chefmate-bench's records: the format the reports are built from, and one clear line without a GPU."""

from __future__ import annotations

import json

import pytest
import torch

from training import bench


def test_records_replace_their_namesakes_and_keep_the_rest(tmp_path, monkeypatch):
    path = tmp_path / "benchmarks.json"
    monkeypatch.setattr(bench.sys, "argv", ["chefmate-bench", "--gpu"])
    bench.write_records([bench.record("a", 1.234, "x"), bench.record("b", 2, "y")], path)
    bench.write_records([bench.record("a", 5, "x")], path)
    records = json.loads(path.read_text())
    assert [(r["name"], r["value"]) for r in records] == [("b", 2.0), ("a", 5.0)]
    assert set(records[0]) == {"name", "value", "unit", "machine", "date", "command"}
    assert records[1]["command"] == "chefmate-bench --gpu" and records[1]["machine"] == bench.machine_name()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given where there is no GPU")
def test_gpu_figures_without_a_gpu_are_one_clear_line(capsys):
    assert bench.main(["--gpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs a CUDA GPU" in err[0]


def test_an_unknown_figure_group_is_one_clear_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--gpu", "--only", "demos,speed"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith("unknown figure group speed; choose from chunk,finetune,concurrent,grid,demos,envs,eager")


def test_a_negative_demo_worker_count_is_one_clear_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--gpu", "--only", "demos", "--demo-workers", "-1"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().endswith(
        "error: --demo-workers -1: give a number of processes, or 0 for one per core")


def test_only_runs_the_groups_named(monkeypatch):
    """A lease cut short reruns what it missed: --only demos measures the demo figure and nothing before it."""
    monkeypatch.setattr(bench, "demo_figures", lambda episodes, workers: iter(
        [bench.record("demos", float(episodes), "n"), bench.record("workers", float(workers), "n")]))
    monkeypatch.setattr(bench, "chunk_figures", lambda *a, **k: pytest.fail("chunk figures were not asked for"))
    assert [r["value"] for r in bench.gpu_records(8, quick=True, only=("demos",))] == [100.0, 0.0]
    assert [r["value"] for r in bench.gpu_records(8, quick=True, only=("demos",), demo_workers=8)] == [100.0, 8.0]


def test_finetune_step_rate_is_measured_on_cpu():
    """The step the GPU figures time runs here too (tiny repeat count; no speed is asserted)."""
    assert bench.finetune_steps_per_s(torch.device("cpu"), batch_size=2, compiled=False, steps=1) > 0


def test_cpu_training_records_time_the_cheapest_and_the_dearest_tuning():
    records = list(bench.cpu_training_records(batch_size=2, steps=1))
    assert [r["name"] for r in records] == ["cpu_finetune_s_per_step_batch2_gr00t_default",
                                            "cpu_finetune_s_per_step_batch2_full"]
    assert all(r["value"] > 0 and r["unit"] == "s/step" and r["machine"].startswith("CPU") for r in records)


def test_a_run_cut_short_keeps_every_figure_it_finished(tmp_path):
    """The first GPU run wrote nothing in 280 s: each record is now written as it is measured."""
    path = tmp_path / "benchmarks.json"

    def figures():
        yield bench.record("first", 1.0, "x")
        yield bench.record("second", 2.0, "x")
        raise RuntimeError("the lease ended")

    with pytest.raises(RuntimeError):
        bench.write_as_measured(figures(), path)
    assert [r["name"] for r in json.loads(path.read_text())] == ["first", "second"]


def test_the_grid_and_demo_figures_run_on_the_cpu(tmp_path):
    """The VLA through the real grid (vector env in worker processes, batched inference) against the scripted
    expert, and demo generation with workers: tiny here, the small preset on the GPU box. No speed is asserted."""
    small = bench.GridBench(preset="tiny", families=("negation",), seeds=1, num_envs=2, workers=2, max_steps=30,
                           scenarios=("H,H",))
    records = {r["name"]: r for r in bench.grid_figures(small, torch.device("cpu"))}
    every_run = {f"{p}_grid_{f}" for p in ("vla", "scripted") for f in ("episodes_per_min", "env_steps_per_s",
                                                                         "startup_s")}
    # The rate after start-up exists only where the full grid outlasted its one-step copy (not promised here).
    after = {f"{p}_grid_episodes_per_min_after_startup" for p in ("vla", "scripted")}
    # The VLA's run is profiled: its time per vector step, the stepping loop's parts and the workers' busy time.
    parts = ("build", "plan", "observe", "act", "step", "bookkeeping")
    timing = {"vla_grid_ms_per_vector_step", *(f"vla_grid_share_{p}" for p in parts),
              "vla_grid_workers_busiest_share", "vla_grid_workers_mean_busy_share"}
    fixed = every_run | timing | {"vla_grid_vs_scripted_ratio"}
    assert fixed <= set(records) <= fixed | after
    shares = [records[f"vla_grid_share_{p}"]["value"] for p in parts]
    assert 0 < sum(shares) <= 1.0 and min(shares) >= 0 and records["vla_grid_share_step"]["value"] > 0
    assert records["vla_grid_share_plan"]["value"] < 0.01  # the VLA plans nothing in a pool
    # A busiest worker is at least as busy as the mean one, and neither is busier than the run was long.
    busiest, mean = (records[f"vla_grid_workers_{k}_share"]["value"] for k in ("busiest", "mean_busy"))
    assert 0 < mean <= busiest <= 1.0
    assert all(r["value"] > 0 for n, r in records.items() if not n.startswith("vla_grid_share_"))
    demos, *shares = bench.demo_figures(episodes=2, image_size=32, workers=2)
    assert demos["name"] == "demo_generation_demos_per_min" and demos["value"] > 0
    # The writing process's profile: where its wall time went, parts that cannot add up to more than all of it.
    assert [r["name"] for r in shares] == [f"demo_generation_share_{p}" for p in ("envs", "expert", "writing")]
    assert all(r["value"] > 0 for r in shares) and sum(r["value"] for r in shares) <= 1.0


def test_env_figures_time_one_env_and_one_per_core():
    """The envs group: a real MuJoCo env alone (without and with cameras) and one per core at once."""
    import os

    figures = {r["name"]: r["value"] for r in bench.env_figures(steps=5, picture_envs=2, rounds=2, processes=(1, 2))}
    assert list(figures) == ["env_steps_per_s_no_cameras", "env_steps_per_s_cameras",
                             "env_steps_per_s_cameras_every_core", "env_steps_per_s_cameras_every_core_slowest",
                             "env_pictures_ms_2_envs_1_processes", "env_pictures_ms_2_envs_2_processes"]
    assert all(v > 0 for v in figures.values())
    every, slowest = figures["env_steps_per_s_cameras_every_core"], figures["env_steps_per_s_cameras_every_core_slowest"]
    assert every >= slowest * (os.cpu_count() or 1) - 0.1  # the sum over cores, each at least the slowest


def test_a_profiled_run_keeps_its_profile_and_its_slowed_figures_apart(tmp_path, monkeypatch):
    """--profile: each group's cProfile of this process lands in DIR/GROUP.txt, rewritten after every record (a
    lease cut short keeps it), and the figures go beside it, never over the plain run's in reports/."""
    def busy(episodes, workers):
        yield bench.record("first", float(sum(i * i for i in range(20000))), "n")
        assert "busy" in (tmp_path / "prof" / "demos.txt").read_text()  # already there after the first record
        raise RuntimeError("the lease ended")

    monkeypatch.setattr(bench, "demo_figures", busy)
    monkeypatch.setattr(bench.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(bench, "machine_name", lambda: "a test GPU")
    monkeypatch.setattr(bench, "RECORDS", tmp_path / "benchmarks.json")
    with pytest.raises(RuntimeError, match="the lease ended"):
        bench.main(["--gpu", "--only", "demos", "--profile", str(tmp_path / "prof")])
    assert not (tmp_path / "benchmarks.json").exists()
    assert [r["name"] for r in json.loads((tmp_path / "prof" / "benchmarks.json").read_text())] == ["first"]
    profile = (tmp_path / "prof" / "demos.txt").read_text()
    assert "cumulative" in profile and "tottime" in profile and "busy" in profile


def test_the_chunk_kernel_figures_count_what_a_chunk_runs(tmp_path):
    """The profiler's table of one batch-1 chunk is written; on a CPU no kernel runs on a GPU, so both figures
    are zero (on the box they say whether the latency is kernels or overhead)."""
    model, _ = bench._model()
    records = {r["name"]: r["value"] for r in bench.chunk_kernel_figures(model.eval(), torch.device("cpu"), 2,
                                                                         tmp_path / "kernels.txt")}
    assert records == {"chunk_kernels_batch1": 0.0, "chunk_gpu_busy_ms_batch1": 0.0}
    assert "Name" in (tmp_path / "kernels.txt").read_text()


def test_a_profiled_group_cut_by_sigterm_keeps_its_profile(tmp_path, monkeypatch):
    """`timeout` ends a lease's call with SIGTERM; the demo group yields nothing before its end, and its profile
    must still be there (the 2026-12-07 lease lost one this way)."""
    import os
    import signal

    def cut(episodes, workers):
        sum(i * i for i in range(20000))
        os.kill(os.getpid(), signal.SIGTERM)
        yield bench.record("never", 1.0, "n")

    monkeypatch.setattr(bench, "demo_figures", cut)
    monkeypatch.setattr(bench.torch.cuda, "is_available", lambda: True)
    before = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as exit_:
            bench.main(["--gpu", "--only", "demos", "--profile", str(tmp_path)])
    finally:
        signal.signal(signal.SIGTERM, before)
    assert exit_.value.code == 128 + signal.SIGTERM
    assert "cut" in (tmp_path / "demos.txt").read_text()


def test_quick_chunk_figures_compile_two_batch_sizes_in_each_precision(monkeypatch):
    """Compiling one graph per batch size is most of the chunk group's time: --quick asks for batch 1 and 64, in
    fp32 and in bf16; the full run for all four sizes."""
    asked = []
    monkeypatch.setattr(bench, "chunk_figures", lambda device, compiled, runs, trace=None, bf16=False, sizes=():
                        asked.append((bf16, sizes)) or iter([]))
    list(bench.gpu_records(8, quick=True, only=("chunk",)))
    list(bench.gpu_records(8, quick=False, only=("chunk",)))
    assert asked == [(False, (1, 64)), (True, (1, 64)), (False, (1, 64, 256, 1024)), (True, (1, 64, 256, 1024))]
