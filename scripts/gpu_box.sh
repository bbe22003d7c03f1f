#!/usr/bin/env bash
# A study on an offline GPU box that takes 64 MiB per upload and goes back 30 s after a call ends: only the wheels
# travel (four parts), the box makes the demos itself on its cores, a GPU smoke of every stage runs before the long
# study, and every call ends by collecting what has finished.
#
#   here:   scripts/gpu_box.sh pack OUT_DIR              # the wheels (requirements-gpu-box.txt) in parts: OUT_DIR/cNN
#           scripts/gpu_box.sh pack-isaaclab OUT_DIR     # optional: Isaac Lab kit-less (requirements-isaaclab-box.txt)
#                                                        #   in parts OUT_DIR/iNN, staged like the wheels; install
#                                                        #   then adds them, for `run python3 -m pytest -m gpu`
#           scripts/gpu_box.sh pack-demos STUDY OUT_DIR  # optional: demos made here (chefmate-study --stages demos)
#                                                        #   in parts OUT_DIR/dNN; staged like the wheels, the box
#                                                        #   then skips its demos stage (about 6 lease minutes)
#   there:  scripts/gpu_box.sh stage PART_DIR            # one call per part, back to back: copied out of the tree
#           scripts/gpu_box.sh restore DIR               # results an earlier lease collected, or reports/study
#           scripts/gpu_box.sh start SPEC [ARGS]         # install, check, start the study as a daemon from a snapshot
#                                                        #   of the code (ARGS: e.g. --seeds 0), and beside it a GPU
#                                                        #   smoke of every stage (~2 min) that must pass
#           scripts/gpu_box.sh install                   # the wheels into /tmp/site, the EGL loader (start does it)
#           scripts/gpu_box.sh run CMD [ARGS]            # CMD in the box's environment, e.g. chefmate-bench --gpu
#           scripts/gpu_box.sh stop                      # the study and its Ray (then `start` again resumes it)
#           scripts/gpu_box.sh watch SECONDS             # progress until the study ends or SECONDS pass
#           scripts/gpu_box.sh collect OUT               # the report, every small result file, the logs
#           scripts/gpu_box.sh collect-weights OUT N [models]  # the backbone's and base's weights (or, with
#                                                        #   models, the fine-tunes'), 4 parts a call (N=0,1,..)
#   here:   scripts/gpu_box.sh pack-weights PARTS OUT    # those parts as uploads OUT/wNN: a later lease stages them
#                                                        #   and skips the backbone and base (about 4 minutes)
#           scripts/gpu_box.sh receive PARTS STUDY       # those parts, checked, into a study folder here: the
#                                                        #   fine-tunes are then evaluated on this CPU box
#
# The lease plan (README, "On an offline GPU box"): every upload first, then start. The study writes to /tmp/study;
# rerunning `start` resumes it (chefmate-study redoes only unfinished units). Never `pkill -f` a pattern that this
# command line itself contains: it kills the command, and the lease with it.
set -euo pipefail
stage=${GPU_BOX_STAGE:-/tmp/stage}; site=${GPU_BOX_SITE:-/tmp/site}; isite=${GPU_BOX_ISAACLAB_SITE:-/tmp/site-isaaclab}
code=/tmp/code; study=${GPU_BOX_STUDY:-/tmp/study}
log=${GPU_BOX_LOG:-/tmp/study.log}; smoke=/tmp/smoke
part_mib=${PART_MIB:-59}  # + the code tree (~4 MB) stays under the 64 MiB a call may carry
here=$(cd "$(dirname "$0")/.." && pwd)

# The box's environment for everything the study runs (Ray workers inherit it).
box_env() {
  export PYTHONPATH="$site:$isite:${1:-$here}" MUJOCO_GL=egl PYTHONUNBUFFERED=1  # $isite: after pack-isaaclab
  # Nothing outside the box answers: the Hugging Face libraries must not wait on the hub.
  export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
  # Ten fine-tunes compile at once: a small Inductor pool each, not one worker per core each.
  export TORCHINDUCTOR_COMPILE_THREADS=${TORCHINDUCTOR_COMPILE_THREADS:-2}
  local vendor=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json  # the driver's EGL, for MuJoCo's renderer
  if [ -f "$vendor" ]; then export __EGL_VENDOR_LIBRARY_FILENAMES=$vendor; fi
}

# The parts collect-weights brought back (NAME: weights or models) are all in SRC and intact, or one clear line.
parts_intact() {
  local src=$1 name=$2
  if ! (cd "$src" && sha256sum -c --quiet "$name.sha256" >/dev/null 2>&1); then
    echo "$src: $name parts missing or damaged: put every collect-weights call's files in one folder" >&2; exit 2
  fi
}

# A stream on stdin cut into upload-sized parts, one folder per upload: OUT/<LETTER>NN/NAME.partNN.
into_uploads() {
  local out=$1 name=$2 letter=$3
  split -b "${part_mib}M" -d -a 2 - "$out/$name.part"
  for f in "$out/$name".part*; do mkdir -p "$out/$letter${f##*part}"; mv "$f" "$out/$letter${f##*part}/"; done
}

# The wheels of REQS (or of $WHEELS, for tests) as one tar stream of folder NAME, cut into uploads OUT/<LETTER>NN.
pack_wheels() {
  local out=$1 reqs=$2 name=$3 letter=$4
  rm -rf "$out/$name" "$out/$letter"[0-9][0-9]; mkdir -p "$out/$name"
  if [ -n "${WHEELS:-}" ]; then cp "$WHEELS"/*.whl "$out/$name/"; else
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any -d "$out/$name" \
      -r "$here/$reqs"
  fi
  tar -C "$out" -cf - "$name" | into_uploads "$out" "$name.tar" "$letter"
  rm -rf "$out/$name"; du -sh "$out/$letter"*
  echo "$(ls -d "$out/$letter"* | wc -l) uploads: one call per part, each carrying it and running 'stage'"
}

case "${1:-}" in
pack)
  # One tar stream of every wheel, cut into parts that each fit one upload with the code beside them.
  pack_wheels "${2:?output folder}" requirements-gpu-box.txt wheels c
  ;;
pack-isaaclab)
  # The same for the Isaac Lab kit-less stack (requirements-isaaclab-box.txt), staged like the wheels.
  pack_wheels "${2:?output folder}" requirements-isaaclab-box.txt isaaclab i
  ;;
pack-demos)
  # A study's finished demos (its data/ folder, markers included) in parts: when the GPU comes late, the CPU box
  # makes them while it waits, and the lease spends a few seconds per upload instead of the demos stage.
  src=${2:?study folder whose demos stage has run}; out=${3:?output folder}
  if ! ls "$src"/data/*/DONE.json >/dev/null 2>&1; then
    echo "$src/data holds no finished demos: run chefmate-study --spec SPEC --out $src --stages demos first" >&2; exit 2
  fi
  rm -rf "$out"/d[0-9]*; mkdir -p "$out"
  tar -C "$src" -cf - data | into_uploads "$out" demos.tar d
  du -sh "$out"/d*
  echo "$(ls -d "$out"/d* | wc -l) more uploads: 'stage' each dNN as the wheels; 'start' puts them in the study"
  ;;
pack-weights)
  # The weights' parts collect-weights brought back (15 MiB each, the most a call returns), joined and cut again
  # into uploads. The sha256 list travels with them: unpack checks it before the study may use the weights.
  src=${2:?folder with weights.tar.part* and weights.sha256}; out=${3:?output folder}
  parts_intact "$src" weights
  rm -rf "$out"/w[0-9]*; mkdir -p "$out"
  cat "$src"/weights.tar.part* | into_uploads "$out" weights.tar w
  cp "$src/weights.tar.sha256" "$out/w00/"; du -sh "$out"/w*
  echo "$(ls -d "$out"/w* | wc -l) more uploads: 'stage' each wNN as the wheels; 'start' puts them in the study"
  ;;
stage)
  # Out of the tree at once: a later call that carries another part removes this one there.
  mkdir -p "$stage"; cp -r "${2:?part folder}"/. "$stage"/; ls "$stage"
  ;;
unpack)
  # The parts, joined, back into wheels, and staged demos into the study (start does this; alone it checks).
  for name in wheels isaaclab; do
    if ls "$stage/$name".tar.part* >/dev/null 2>&1; then
      cat "$stage/$name".tar.part* | tar -C "$stage" -xf - && rm -f "$stage/$name".tar.part*
    fi
  done
  if ls "$stage"/demos.tar.part* >/dev/null 2>&1; then
    mkdir -p "$study"; cat "$stage"/demos.tar.part* | tar -C "$study" -xf - && rm -f "$stage"/demos.tar.part*
    echo "demos made elsewhere: $(ls "$study"/data | tr '\n' ' ')"
  fi
  if ls "$stage"/weights.tar.part* >/dev/null 2>&1; then
    # An earlier lease's backbone and base: the same files, or nothing (a fine-tune must not start from a torn one).
    mkdir -p "$study"; cat "$stage"/weights.tar.part* >"$stage/weights.tar"
    if ! (cd "$stage" && sha256sum -c --quiet weights.tar.sha256 >/dev/null 2>&1); then
      rm -f "$stage"/weights.tar; echo "the staged weights are damaged or incomplete: stage every wNN part again" >&2
      exit 2
    fi
    tar -C "$study" -xf "$stage/weights.tar" && rm -f "$stage"/weights.tar*
    echo "weights made in an earlier lease: $(cd "$study" && ls -d backbone/model base/model | tr '\n' ' ')"
  fi
  ls "$stage"/wheels 2>/dev/null || true
  ;;
restore)
  # Results an earlier lease collected (study_results.tgz), into the study folder: `start` then skips every unit
  # they finished, and a fine-tune whose evaluation and diagnosis are there is not trained again.
  # DIR: collect's output (study_results.tgz) or results committed from it (reports/study, which travels).
  src=${2:?folder with study_results.tgz, or reports/study}; mkdir -p "$study"
  if [ -f "$src/study_results.tgz" ]; then tar -C "$study" -xzf "$src/study_results.tgz"; else cp -r "$src"/. "$study"/; fi
  echo "restored $(find "$study" -name DONE.json -path '*/eval/*' | wc -l) evaluated runs into $study"
  ;;
install)
  # Once per box: the EGL/GL loader (MuJoCo renders through the driver's EGL) and the staged wheels.
  if [ ! -d "$site" ]; then
    for f in "$here"/.gl/*.deb; do if [ -e "$f" ]; then dpkg -x "$f" /; fi; done; ldconfig || true
    "$0" unpack >/dev/null
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$stage"/wheels/*.whl
  fi
  # Isaac Lab's wheels, where pack-isaaclab's parts were staged (for `pytest -m gpu`), into a site of their own.
  if [ ! -d "$isite" ] && { ls "$stage"/isaaclab.tar.part* || ls "$stage"/isaaclab/*.whl; } >/dev/null 2>&1; then
    "$0" unpack >/dev/null
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$isite" "$stage"/isaaclab/*.whl
  fi
  ;;
run)
  # One command in the environment the study gets (the wheels, offline Hugging Face, MuJoCo on EGL), from the tree.
  shift; box_env; exec "$@"
  ;;
start)
  spec=${2:?spec}; shift 2
  began=$(date +%s)
  if pgrep -f "training.study.cli --spec" >/dev/null; then echo "a study is running already: watch it, or stop it" >&2; exit 1; fi
  "$0" unpack | grep -v '\.whl$' || true  # the wheels' parts, and staged demos into the study (said here)
  "$0" install
  # The study runs from a snapshot: later uploads may change the tree. Wheels and venvs stay out of it.
  rm -rf "$code"; mkdir -p "$code"
  tar -C "$here" --exclude=./.venv --exclude=./.gpu --exclude=./.gl --exclude=./.git -cf - . | tar -C "$code" -xf -
  box_env "$code"; cd "$code"
  python3 - <<'EOF'
import torch, ray, mujoco, av, lerobot
from leisaac_tasks.env import SandwichEnv
env = SandwichEnv(image_size=96)
obs, _ = env.reset(seed=0)
print("cuda", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none", "| ray", ray.__version__,
      "| mujoco", mujoco.__version__, "| av", av.__version__, "| lerobot", lerobot.__version__,
      "| render mean", float(obs["front"].mean()), flush=True)
env.close()
EOF
  echo "installed and checked in $(( $(date +%s) - began )) s"
  # Ray's own messages (worker exits, log dedup) go to a file of their own: the study log keeps a line per unit.
  # watch counts from this line: the study's own first line comes seconds later, after the earlier runs' report line.
  echo "study started $(date -u '+%F %T') UTC: $spec $*" >>"$log"
  setsid nohup python3 -m training.study.cli --spec "$spec" --out "$study" "$@" >>"$log" 2>>"$log.ray" </dev/null &
  echo $! >/tmp/study.pid; echo "study started: $log"
  # Beside it (its first minutes are demos and the backbone), the smoke study on the long run's code paths: a crash
  # on the GPU shows now, not twenty minutes in. Its local Ray is a second instance; the GPU has room for both.
  # Once it has passed on this box, a later start (another seed) goes straight on.
  if [ -f "$smoke/report.html" ]; then echo "GPU smoke passed on this box already"; exit 0; fi
  # A short lease of code that has run on a GPU may skip it: it shares the GPU with the study's fine-tunes.
  if [ "${GPU_BOX_SMOKE:-1}" = 0 ]; then echo "GPU smoke skipped (GPU_BOX_SMOKE=0)"; exit 0; fi
  rm -rf "$smoke"
  rc=0; timeout "${SMOKE_TIMEOUT:-300}" python3 -m training.study.cli --spec studies/smoke_gpu.yaml --out "$smoke" \
       >"$smoke.log" 2>"$smoke.err" || rc=$?
  if [ "$rc" -eq 124 ] && ! grep -q "FAILED" "$smoke.log"; then
    # Beside a real study's backbone and base it can run out of time with nothing wrong (2026-12-06, late lease).
    echo "GPU smoke stopped at its time limit with no unit failed: $(grep -c ' done in ' "$smoke.log") units passed"
    exit 0
  fi
  if [ "$rc" -ne 0 ]; then
    tail -30 "$smoke.log"; tail -30 "$smoke.err"
    echo "GPU smoke FAILED after $(( $(date +%s) - began )) s: fix it, then 'stop' and 'start' again" >&2; exit 1
  fi
  grep -h '"compile_error": "[^"]' "$smoke"/runs/*/model/DONE.json "$smoke"/base/DONE.json || true
  grep "FAILED" "$smoke.log" && echo "GPU smoke: units FAILED (above)" >&2 && exit 1
  echo "GPU smoke passed at $(( $(date +%s) - began )) s: $(grep -c ' done in ' "$smoke.log") units, every stage"
  ;;
stop)
  # The study daemon and its Ray (a fixed code snapshot is then started with `start`; finished units are kept).
  if [ -f /tmp/study.pid ]; then kill -- -"$(cat /tmp/study.pid)" 2>/dev/null || true; fi
  PYTHONPATH="$site" python3 -c "import sys; from ray.scripts.scripts import main; sys.argv = ['ray', 'stop', '--force']; main()" || true
  ;;
watch)
  # Until this run's report line (the log keeps earlier runs' lines: count from the last start) or SECONDS.
  end=$(( $(date +%s) + ${2:?seconds} ))
  from=$(grep -n "^study started " "$log" 2>/dev/null | tail -n 1 | cut -d: -f1); from=${from:-1}
  while [ "$(date +%s)" -lt "$end" ]; do
    if tail -n +"$from" "$log" 2>/dev/null | grep -q "^wrote .*report.html"; then break; fi
    if ! pgrep -f "training.study.cli --spec" >/dev/null; then echo "the study is not running"; break; fi
    left=$(( end - $(date +%s) )); sleep $(( left < 10 ? (left > 0 ? left : 0) : 10 ))
  done
  tail -n +"$from" "$log" 2>/dev/null | tail -n 25 || true
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader || true
  ;;
collect)
  # Results only: model weights stay on the box (a study folder restored without them retrains the backbone and
  # the base, and never a fine-tune whose evaluation and diagnosis came back).
  out=${2:?out}; mkdir -p "$out"; out=$(cd "$out" && pwd)
  for f in "$log" "$smoke.log"; do if [ -f "$f" ]; then cp "$f" "$out/"; fi; done  # first: a tar error cannot lose them
  if [ -f "$log.ray" ]; then tail -c 1000000 "$log.ray" >"$out/study.log.ray"; fi
  if [ -d "$study" ]; then
    # The demos stay (the box makes them again); their markers come, for the report's layout seeds. The backbone's
    # and base's folders stay too (collect-weights brings them whole): a model folder restored without its weights
    # would pass for a finished unit.
    (cd "$study" && { if [ -d data ]; then find ./data -maxdepth 2 -name DONE.json; fi; find . \( -path ./data -o -path ./backbone/model -o \
       -path ./backbone/captions -o -path ./base/model \) -prune -o -type f \( -name '*.csv' -o -name '*.csv.gz' \
       -o -name '*.json' -o -name '*.md' -o -name '*.png' -o -name '*.html' -o -name '*.txt' \) -size -2M -print; } \
       | tar -czf "$out/study_results.tgz" -T -)
  fi
  ls -la "$out"
  ;;
collect-weights)
  # Final weights (no checkpoints, no optimizer state) in 15 MiB parts, four a call. WHAT=shared (default): the
  # backbone's and the base's, so a later lease starts at the fine-tunes from the very same base. WHAT=models: the
  # fine-tunes the box has not evaluated and diagnosed, so the CPU box does (`receive`, then chefmate-study
  # --stages evaluate,diagnose,report) and the lease is spent on training. N=0 packs them anew.
  out=${2:?out}; n=${3:?part group: 0 for the first four parts, 1 for the next four, ...}; what=${4:-shared}
  parts=${GPU_BOX_WEIGHTS:-/tmp/weights}/$what
  case "$what" in
  shared)
    name=weights; folders=()
    for unit in backbone base; do
      if [ ! -f "$study/$unit/DONE.json" ] || [ ! -d "$study/$unit/model" ]; then
        echo "$study/$unit is not finished: collect its weights after the study's [$unit] line" >&2; exit 2
      fi
      folders+=("$unit/model")
    done ;;
  models)
    # Finished fine-tunes with their weights (runs restored from results hold configs only) that the box has not
    # evaluated and diagnosed yet (collect brings those runs' results); not superseded ones.
    name=models; folders=()
    for m in "$study"/runs/*/model; do
      case "$m" in *.superseded-*) continue ;; esac
      run=$(dirname "$m")
      if [ -f "$run/eval/DONE.json" ] && [ -f "$run/diagnose/DONE.json" ]; then continue; fi
      if [ -f "$m/DONE.json" ] && ls "$m"/*.safetensors >/dev/null 2>&1; then folders+=("${m#"$study"/}"); fi
    done
    if [ ${#folders[@]} -eq 0 ]; then
      echo "$study/runs holds no finished fine-tune with weights still to evaluate: collect models after the" \
        "study's [finetune] lines (collect brings the runs it evaluated)" >&2
      exit 2
    fi ;;
  *) echo "collect-weights: WHAT is shared or models, not '$what'" >&2; exit 2 ;;
  esac
  if [ "$n" -eq 0 ] || [ ! -f "$parts/$name.sha256" ]; then
    rm -rf "$parts"; mkdir -p "$parts"
    tar -C "$study" --exclude='checkpoint-*' -cf "$parts/$name.tar" "${folders[@]}"
    (cd "$parts" && sha256sum "$name.tar" >"$name.tar.sha256")
    split -b "${WEIGHT_PART_MIB:-15}M" -d -a 2 "$parts/$name.tar" "$parts/$name.tar.part" && rm "$parts/$name.tar"
    (cd "$parts" && sha256sum "$name".tar.part* "$name.tar.sha256" >"$name.sha256")
  fi
  mkdir -p "$out"; all=("$parts/$name".tar.part*); first=$(( n * 4 )); took=("${all[@]:$first:4}")
  for f in "${took[@]}"; do cp "$f" "$out/"; done
  if [ "$n" -eq 0 ]; then cp "$parts/$name.sha256" "$parts/$name.tar.sha256" "$out/"; fi
  left=$(( ${#all[@]} - first - ${#took[@]} ))
  echo "$name (${#folders[@]} folders): ${#took[@]} of ${#all[@]} parts here; $([ "$left" -gt 0 ] && echo "call again with N=$(( n + 1 ))" || echo "all sent")"
  ;;
receive)
  # Here: what collect-weights brought back (every call's files in one folder), checked and put into a study
  # folder: the fine-tunes' models to evaluate here, or the backbone and base.
  src=${2:?folder with the collect-weights parts}; dest=${3:?study folder}; got=0
  for name in weights models; do
    if [ ! -f "$src/$name.sha256" ]; then continue; fi
    parts_intact "$src" "$name"
    mkdir -p "$dest"; got=1
    listed=$(cat "$src/$name".tar.part* | tar -C "$dest" -xvf -)  # a failed extraction stops here (set -e)
    echo "$name into $dest: $(grep -c '/DONE.json$\|safetensors$' <<<"$listed" || true) files"
  done
  if [ "$got" -eq 0 ]; then echo "$src holds no weights.sha256 or models.sha256: bring collect-weights' files" >&2; exit 2; fi
  ;;
*)
  sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2
  ;;
esac
