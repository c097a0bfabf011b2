#!/usr/bin/env bash
# GPU check (under 5 minutes on one GPU): train xvector and ecapa_c512 for a few
# hundred steps on CUDA in fp32 and bf16, one process then torchrun with one
# process per GPU; print chunks/s and peak GPU memory per row; check that the
# loss falls and that a checkpoint written on the GPU gives the same embeddings
# on the CPU (cosine > 0.9999).  Skips with a message where there is no GPU.
#   bench/gpu_check.sh [workdir]      (default: a temp dir)
# SV_GPU_CHECK_DEVICE=cpu dry-runs the script's logic on a CPU (2 processes, few steps).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${SV_ROOT:-}" ] || . ./path.sh
device=${SV_GPU_CHECK_DEVICE:-cuda}
steps=150 batch=128
if [ "$device" = cpu ]; then
  ngpu=2 steps=3 batch=8
elif ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "$0: no CUDA GPU visible to torch; skipped (nothing checked)"; exit 0
else
  ngpu=$(python -c "import torch; print(torch.cuda.device_count())")
fi
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
printf "%-12s %-5s %-6s %10s %12s %8s %8s %10s\n" model prec procs chunks/s peak_GPU_MB loss_1 loss_N cpu_cosine
status=0
for model in xvector ecapa_c512; do
  for precision in fp32 bf16; do
    for procs in 1 $ngpu; do
      dir=$work/exp_${model}_${precision}_$procs
      cfg=$work/${model}_${precision}.yaml
      python - "$cfg" "$model" "$precision" "$device" "$steps" "$batch" <<'PY'
import sys, yaml
path, model, precision, device, steps, batch = sys.argv[1:]
steps, batch = int(steps), int(batch)
yaml.safe_dump({"model": {"name": model}, "loss": {"name": "aam", "margin": 0.2, "scale": 32},
                "features": {"type": "fbank"},
                "data": {"min_chunk_frames": 200, "max_chunk_frames": 200, "batch_size": batch,
                         "chunks_per_epoch": batch * steps},
                "optimizer": {"name": "adam", "lr": 0.001},
                "scheduler": {"name": "constant"},
                "training": {"epochs": 2, "seed": 1, "device": device, "precision": precision,
                             "num_threads": 4}}, open(path, "w"))
PY
      steps/train.sh --force true --nproc-per-node "$procs" "$cfg" "$work" "$dir" > /dev/null \
        || { echo "$model $precision $procs: training failed, see $dir/log/train.log"; status=1; continue; }
      python - "$dir" "$model" "$precision" "$procs" "$device" <<'PY' || status=1
import sys, numpy as np, torch
from pyutils.training import checkpoint
from pyutils.extraction.extract import embed, load_embedding_model
d, model, precision, procs, device = sys.argv[1:]
s1 = checkpoint.load(f"{d}/models/epoch_1.pt")["stats"]
s2 = checkpoint.load(f"{d}/models/epoch_2.pt")["stats"]
losses = s1["step_losses"] + s2["step_losses"]
n = max(1, min(20, len(losses) // 3))
first, last = float(np.mean(losses[:n])), float(np.mean(losses[-n:]))
x = np.random.default_rng(1).normal(size=(300, 80)).astype(np.float32)
gpu = embed(load_embedding_model(f"{d}/final.pt", device), x)
cpu = embed(load_embedding_model(f"{d}/final.pt", "cpu"), x)
cos = float(gpu @ cpu / np.linalg.norm(gpu) / np.linalg.norm(cpu))
print(f"{model:<12} {precision:<5} {procs:<6} {s2['chunks_per_s']:10.1f} "
      f"{s2.get('peak_gpu_mb', float('nan')):12.1f} {first:8.3f} {last:8.3f} {cos:10.6f}")
ok = last < first and cos > 0.9999
if not ok:
    print(f"  FAIL: loss {'falls' if last < first else 'does not fall'}, cosine {cos:.6f}")
sys.exit(0 if ok else 1)
PY
      [ "$procs" = "$ngpu" ] && break
    done
  done
done
[ $status -eq 0 ] && echo "$0: all checks passed" || echo "$0: some checks FAILED"
exit $status
