#!/usr/bin/env bash
# GPU check: train xvector and ecapa_c512 for a few hundred steps on CUDA, one
# row per path: fp32 in one plain process; fp32 under torchrun with one process
# (NCCL process group, DistributedDataParallel, SyncBatchNorm converted); bf16;
# fp16 with the GradScaler, plain and under torchrun; and fp32 with one process
# per GPU where there are two or more.  Each row prints chunks/s, peak GPU
# memory and the process group the network trained under (ddp: none | nccl |
# gloo), and checks that the loss falls, that a checkpoint written on the GPU
# gives the same embeddings on the CPU (cosine > 0.9999), that torchrun rows ran
# under DDP with the expected backend and that fp16 rows kept a finite, positive
# loss scale.  Skips with a message where there is no GPU.
#   bench/gpu_check.sh [workdir]      (default: a temp dir)
# SV_GPU_CHECK_DEVICE=cpu dry-runs the script on a CPU (gloo, 2 processes for
# the multi-process row, few steps; rows that need CUDA print "skipped: no CUDA").
# SV_GPU_CHECK_MODELS="xvector" checks fewer networks.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${SV_ROOT:-}" ] || . ./path.sh
device=${SV_GPU_CHECK_DEVICE:-cuda}
models=${SV_GPU_CHECK_MODELS:-xvector ecapa_c512}
steps=150 batch=128
if [ "$device" = cpu ]; then
  ngpu=2 steps=3 batch=8 backend=gloo
elif ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "$0: no CUDA GPU visible to torch; skipped (nothing checked)"; exit 0
else
  ngpu=$(python -c "import torch; print(torch.cuda.device_count())") backend=nccl
fi
# precision launcher processes
rows=("fp32 python 1" "fp32 torchrun 1" "bf16 python 1" "fp16 python 1" "fp16 torchrun 1")
[ "$ngpu" -gt 1 ] && rows+=("fp32 torchrun $ngpu")
work=${1:-$(mktemp -d)}
python - "$work" <<'PY'
import sys, numpy as np
from pyutils.utils.arkio import write_scp_dict
from pyutils.utils.fileio import write_lines
work = sys.argv[1]
rng = np.random.default_rng(0)
feats, u2s = {}, {}
for s in range(50):
    centre = rng.normal(size=80)
    for u in range(8):
        feats[f"s{s:02d}-u{u}"] = (centre + rng.normal(size=(400, 80))).astype(np.float32)
        u2s[f"s{s:02d}-u{u}"] = f"s{s:02d}"
write_scp_dict(f"{work}/feats.ark", f"{work}/feats.scp", feats)
write_lines(f"{work}/utt2spk", (f"{u} {u2s[u]}" for u in sorted(u2s)))
PY
printf "%-12s %-5s %-9s %-5s %-5s %10s %12s %8s %8s %10s\n" model prec launcher procs ddp \
  chunks/s peak_GPU_MB loss_1 loss_N cpu_cosine
status=0
for model in $models; do
  for row in "${rows[@]}"; do
    read -r precision launcher procs <<< "$row"
    if [ "$device" = cpu ] && [ "$precision" = fp16 ]; then
      printf "%-12s %-5s %-9s %-5s skipped: no CUDA\n" "$model" "$precision" "$launcher" "$procs"
      continue
    fi
    dir=$work/exp_${model}_${precision}_${launcher}_$procs
    cfg=$work/${model}_${precision}_$launcher.yaml
    python - "$cfg" "$model" "$precision" "$device" "$steps" "$batch" "$launcher" <<'PY'
import sys, yaml
path, model, precision, device, steps, batch, launcher = sys.argv[1:]
steps, batch = int(steps), int(batch)
yaml.safe_dump({"model": {"name": model}, "loss": {"name": "aam", "margin": 0.2, "scale": 32},
                "features": {"type": "fbank"},
                "data": {"min_chunk_frames": 200, "max_chunk_frames": 200, "batch_size": batch,
                         "chunks_per_epoch": batch * steps},
                "optimizer": {"name": "adam", "lr": 0.001},
                "scheduler": {"name": "constant"},
                "training": {"epochs": 2, "seed": 1, "device": device, "precision": precision,
                             "num_threads": 4, "sync_bn": launcher == "torchrun"}},
               open(path, "w"))
PY
    steps/train.sh --force true --launcher "$launcher" --nproc-per-node "$procs" \
      "$cfg" "$work" "$dir" > /dev/null || {
      echo "$model $precision $launcher $procs: training failed, see $dir/log/train.log"
      status=1; continue; }
    python - "$dir" "$model" "$precision" "$launcher" "$procs" "$device" "$backend" <<'PY' || status=1
import json, math, sys, numpy as np
from pyutils.training import checkpoint
from pyutils.extraction.extract import embed, load_embedding_model
d, model, precision, launcher, procs, device, backend = sys.argv[1:]
s1 = checkpoint.load(f"{d}/models/epoch_1.pt")["stats"]
s2 = checkpoint.load(f"{d}/models/epoch_2.pt")["stats"]
ddp = json.load(open(f"{d}/train_summary.json")).get("distributed")
losses = s1["step_losses"] + s2["step_losses"]
n = max(1, min(20, len(losses) // 3))
first, last = float(np.mean(losses[:n])), float(np.mean(losses[-n:]))
x = np.random.default_rng(1).normal(size=(300, 80)).astype(np.float32)
gpu = embed(load_embedding_model(f"{d}/final.pt", device), x)
cpu = embed(load_embedding_model(f"{d}/final.pt", "cpu"), x)
cos = float(gpu @ cpu / np.linalg.norm(gpu) / np.linalg.norm(cpu))
print(f"{model:<12} {precision:<5} {launcher:<9} {procs:<5} {ddp or 'none':<5} "
      f"{s2['chunks_per_s']:10.1f} {s2.get('peak_gpu_mb', float('nan')):12.1f} {first:8.3f} "
      f"{last:8.3f} {cos:10.6f}")
problems = []
if not last < first:
    problems.append("the loss does not fall")
if not cos > 0.9999:
    problems.append(f"cosine {cos:.6f} to the CPU's embedding")
want = backend if launcher == "torchrun" else None
if ddp != want:
    problems.append(f"trained under {ddp or 'no process group'}, expected {want or 'none'}")
if precision == "fp16":
    scale = s2.get("grad_scale")
    if scale is None or not math.isfinite(scale) or scale <= 0:
        problems.append(f"no finite GradScaler scale after epoch 2 ({scale})")
if not all(math.isfinite(v) for v in losses):
    problems.append("a step's loss is not finite")
for problem in problems:
    print(f"  FAIL: {problem}")
sys.exit(1 if problems else 0)
PY
  done
done
[ $status -eq 0 ] && echo "$0: all checks passed" || echo "$0: some checks FAILED"
exit $status
