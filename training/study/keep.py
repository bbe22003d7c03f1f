"""Keep what a GPU lease brought back: the study's results, small enough to commit and to travel again.

    python -m training.study.keep RESULTS reports/study   # RESULTS: collect's folder (study_results.tgz) or a study

Every upload to the GPU box carries the tracked tree beside a 59 MiB part, so the committed study must stay small
for all its seeds. Per run it keeps the files the report and a later lease read (markers, the model's config and
loss curve, the evaluation's episodes gzipped - about 28x smaller - and summary, the diagnosis), and leaves the
figures, checkpoints' configs and counterfactual pairs that the report does not need. A run that came back replaces
the committed one whole (a finished run's units belong together); committed runs that did not come back stay, except
those the lease moved aside (runs/NAME.superseded-K, trained for an older spec): they are moved aside here too.
The study's tables, figures and study.json are then rebuilt here from every kept run:
``chefmate-study --spec DEST/spec.json --out DEST --stages report``.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import tarfile
import tempfile
from pathlib import Path

from training.study.layout import EPISODES, EPISODES_KEPT, MARKER, SUPERSEDED

# Per unit folder of a run: the files that are kept (episodes.csv is kept gzipped; a run the lease restored from
# committed results comes back with its episodes already gzipped). Where a run holds both, episodes.csv is kept, as
# Layout.episodes reads it: it comes after the gzipped file here and overwrites it.
RUN_FILES = {"model": (MARKER, "config.json", "loss.csv"),
             "eval": (MARKER, EPISODES_KEPT, EPISODES, "summary.csv"),
             "diagnose": (MARKER, "diagnosis.json", "diagnosis.md")}
# The spec the runs were trained for, and the shared units' markers (their weights and datasets never travel back).
# The study's tables, figures and study.json are rebuilt from the kept runs; the results may hold only some runs
# (a lease that trained part of a row, evaluated on the CPU box).
STUDY_FILES = ("spec.json",)
SHARED_MARKERS = ("backbone", "base", "data/*")


class KeepError(ValueError):
    pass


def _same_marker(a: Path, b: Path) -> bool:
    """Both units finished, and with the very same marker: the same training, or the same evaluation."""
    a, b = a / MARKER, b / MARKER
    return a.exists() and b.exists() and a.read_bytes() == b.read_bytes()


def _same_evaluation_without_episodes(src: Path, dest: Path) -> bytes | None:
    """The committed episodes, when SRC came back with the very evaluation DEST holds but without its episodes (a
    run restored on the box from these results, collected before collect brought .csv.gz files back)."""
    kept = dest / "eval" / EPISODES_KEPT
    if any((src / "eval" / n).exists() for n in (EPISODES, EPISODES_KEPT)) or not kept.exists():
        return None
    return kept.read_bytes() if _same_marker(src / "eval", dest / "eval") else None


def keep_run(src: Path, dest: Path) -> None:
    """One run's kept files, from a study's runs/NAME into DEST (replaced whole)."""
    carried = _same_evaluation_without_episodes(src, dest)
    shutil.rmtree(dest, ignore_errors=True)
    if carried is not None:
        (dest / "eval").mkdir(parents=True)
        (dest / "eval" / EPISODES_KEPT).write_bytes(carried)
    for unit, names in RUN_FILES.items():
        for name in names:
            f = src / unit / name
            if not f.exists():
                continue
            (dest / unit).mkdir(parents=True, exist_ok=True)
            if name == EPISODES:
                with f.open("rb") as raw, gzip.GzipFile(dest / unit / EPISODES_KEPT, "wb", mtime=0) as packed:
                    shutil.copyfileobj(raw, packed)  # mtime 0: the same episodes give the same bytes
            else:
                shutil.copy2(f, dest / unit / name)


def _move_aside_as_the_lease_did(results: Path, dest: Path) -> None:
    """A committed run that the lease moved aside (it holds NAME.superseded-K, trained as the committed NAME was,
    and no NAME of its own) is moved aside here under the same name. Left under NAME, the report here would move it
    aside a second time, beside the lease's copy."""
    for aside in (results / "runs").glob(f"*{SUPERSEDED}*"):
        name = aside.name.split(SUPERSEDED)[0]
        committed = dest / "runs" / name
        if (results / "runs" / name).exists() or (dest / "runs" / aside.name).exists() or not committed.is_dir():
            continue
        if _same_marker(aside / "model", committed / "model"):
            committed.rename(dest / "runs" / aside.name)


def keep(results: Path, dest: Path) -> list[str]:
    """Every run in RESULTS (a study folder) kept into DEST; returns the runs' names."""
    runs = sorted(p for p in (results / "runs").glob("*") if p.is_dir()) if (results / "runs").is_dir() else []
    if not runs:
        raise KeepError(f"{results} holds no runs: pass the folder collect wrote (study_results.tgz) or a study's "
                        "--out folder")
    _move_aside_as_the_lease_did(results, dest)
    for run in runs:
        keep_run(run, dest / "runs" / run.name)
    for name in STUDY_FILES:
        if (results / name).exists():
            shutil.copy2(results / name, dest / name)
    for pattern in SHARED_MARKERS:
        for marker in results.glob(f"{pattern}/{MARKER}"):
            target = dest / marker.relative_to(results)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(marker, target)
    return [r.name for r in runs]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.study.keep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", type=Path, help="collect's folder (study_results.tgz in it), the .tgz, or a study")
    p.add_argument("dest", type=Path, help="the committed study, e.g. reports/study")
    a = p.parse_args(argv)
    tgz = a.results / "study_results.tgz" if a.results.is_dir() else a.results
    try:
        if tgz.is_file():
            with tempfile.TemporaryDirectory() as tmp, tarfile.open(tgz) as tar:
                tar.extractall(tmp, filter="data")
                kept = keep(Path(tmp), a.dest)
        elif a.results.is_dir():
            kept = keep(a.results, a.dest)
        else:
            raise KeepError(f"{a.results}: no such folder or file; pass the folder collect wrote")
    except KeepError as e:
        p.exit(2, f"{e}\n")
    print(f"kept {len(kept)} runs in {a.dest}: {', '.join(kept)}")
    print(f"now rebuild its tables: chefmate-study --spec {a.dest}/spec.json --out {a.dest} --stages report")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
