#!/usr/bin/env bash
# Run a study on an offline GPU box whose uploads are capped per transfer (e.g. 64 MiB): the wheels and the demo
# datasets travel in parts, the study runs as a daemon that outlives each command, and the results come back small.
#
#   here:   scripts/gpu_box.sh pack STUDY_DIR OUT_DIR     # wheels + demos in parts of 59 MiB: OUT_DIR/cNN/
#   there:  scripts/gpu_box.sh stage PART_DIR             # one call per part: copy it into /tmp/stage
#           scripts/gpu_box.sh restore DIR                # unpack results an earlier lease collected (optional)
#           scripts/gpu_box.sh start SPEC [ARGS]          # install, check, snapshot the code, start the study
#                                                         #   (ARGS go to chefmate-study, e.g. --seeds 0,1)
#           scripts/gpu_box.sh watch SECONDS              # print progress until the study ends or SECONDS pass
#           scripts/gpu_box.sh collect OUT                # the report, every small result file, the backbone and base
#
# The study writes to /tmp/study; rerunning `start` resumes it (chefmate-study redoes only unfinished units).
# Results carried back (study_results.tgz, backbone.tgz, base.tgz), or a backbone and base trained elsewhere, and
# restored into /tmp/study in a later lease let the same command go on there: finished units are not redone.
# Never `pkill -f` a pattern that this command line itself contains: it kills the command, and the lease with it.
set -euo pipefail
stage=/tmp/stage; site=/tmp/site; code=/tmp/code; study=/tmp/study; log=/tmp/study.log
here=$(cd "$(dirname "$0")/.." && pwd)

case "${1:-}" in
pack)
  # One stream of every wheel and the study's demo datasets, cut into parts that each fit one upload.
  src=${2:?study folder}; out=${3:?output folder}; mkdir -p "$out/stream/wheels"
  bash "$here/../shared/gpu/make_wheel_bundles.sh" "$out/bundles" -r "$here/requirements-gpu-box.txt" >/dev/null
  cp "$out"/bundles/.wheels/*.whl "$out/stream/wheels/"
  tar -C "$src" -cf "$out/stream/data.tar" data
  tar -C "$out/stream" -cf - wheels data.tar | split -b 59M -d -a 2 - "$out/bundle.tar.part"
  for f in "$out"/bundle.tar.part*; do mkdir -p "$out/c${f##*part}"; mv "$f" "$out/c${f##*part}/"; done
  rm -rf "$out/stream" "$out/bundles"; du -sh "$out"/c*
  ;;
stage)
  mkdir -p "$stage"; cp -r "${2:?part folder}"/. "$stage"/; ls "$stage" | wc -l
  ;;
restore)
  # Whatever of collect's tars DIR holds, into the study folder; `start` then skips the units they finished.
  src=${2:?folder with the collected tars}; mkdir -p "$study"
  for t in backbone base study_results; do
    [ -f "$src/$t.tgz" ] && tar -C "$study" -xzf "$src/$t.tgz" && echo "restored $t"
  done
  ls "$study"
  ;;
start)
  spec=${2:?spec}; shift 2
  if [ ! -d "$site" ]; then
    for f in "$here"/.gl/*.deb; do [ -e "$f" ] && dpkg -x "$f" /; done; ldconfig || true
    cat "$stage"/bundle.tar.part* | tar -C "$stage" -xf - && rm -f "$stage"/bundle.tar.part*
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$stage"/wheels/*.whl
  fi
  if [ ! -d "$study/data" ]; then
    mkdir -p "$study"; tar -C "$study" -xf "$stage/data.tar"
  fi
  rm -rf "$code"; cp -r "$here" "$code"  # the study runs from a snapshot: later uploads may change the tree
  export PYTHONPATH="$site:$code" MUJOCO_GL=egl PYTHONUNBUFFERED=1
  # Eight fine-tunes compile at once: a small Inductor pool each, not one worker per core each.
  export TORCHINDUCTOR_COMPILE_THREADS=${TORCHINDUCTOR_COMPILE_THREADS:-2}
  vendor=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json  # the driver's EGL, for MuJoCo's renderer
  [ -f "$vendor" ] && export __EGL_VENDOR_LIBRARY_FILENAMES=$vendor
  if [ "${MPS:-0}" = 1 ]; then  # CUDA MPS: kernels of the concurrent fine-tunes overlap instead of time-slicing
    export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps CUDA_MPS_LOG_DIRECTORY=/tmp/mpslog; mkdir -p /tmp/mps /tmp/mpslog
    nvidia-cuda-mps-control -d && echo "CUDA MPS daemon started"
  fi
  python3 - <<'EOF'
import torch, ray, mujoco, av
from leisaac_tasks.env import SandwichEnv
env = SandwichEnv(image_size=96)
obs, _ = env.reset(seed=0)
print("cuda", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none", "| ray", ray.__version__, "| mujoco", mujoco.__version__,
      "| av", av.__version__, "| render mean", float(obs["front"].mean()))
env.close()
EOF
  cd "$code"
  setsid nohup python3 -m training.study.cli --spec "$spec" --out "$study" "$@" >>"$log" 2>&1 < /dev/null &
  echo "study started: $log"
  ;;
watch)
  end=$(( $(date +%s) + ${2:?seconds} ))
  while [ "$(date +%s)" -lt "$end" ]; do
    if grep -q "^wrote .*report.html" "$log" 2>/dev/null; then break; fi
    sleep 15
  done
  grep -v "^\s" "$log" | grep "^\[\|^study\|^wrote\|rror" | tail -40
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader || true
  ;;
collect)
  out=${2:?out}; mkdir -p "$out"; out=$(cd "$out" && pwd)  # absolute: the base's tar runs in the study folder
  (cd "$study" && find . -path ./data -prune -o -type f \( -name '*.csv' -o -name '*.json' -o -name '*.md' \
     -o -name '*.png' -o -name '*.html' -o -name '*.txt' \) -size -2M -print | tar -czf "$out/study_results.tgz" -T -)
  [ -d "$study/backbone/model" ] && tar -C "$study" -czf "$out/backbone.tgz" backbone/DONE.json backbone/model
  [ -f "$log" ] && cp "$log" "$out/study.log"  # first, so a later tar error cannot lose it
  # The shard glob must expand inside the study folder (tar -C does not move the shell's globbing).
  [ -f "$study/base/DONE.json" ] && (cd "$study" && tar -czf "$out/base.tgz" base/DONE.json base/model/config.json \
     base/model/*.safetensors)
  ls -la "$out"
  ;;
*)
  sed -n 2,12p "$0"; exit 2
  ;;
esac
