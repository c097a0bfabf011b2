#!/usr/bin/env bash
# Train an embedding network from a YAML config; resumable (epoch checkpoints).
# Skipped when <dir>/.done records the same config and data (its stamp lists
# the config, the data dir's tables and upstream .done markers); a finished or
# half-done run whose config or data changed is refused, naming the changed
# keys, unless --force true (which starts over).  With more than one process
# (--nproc-per-node N, --nnodes M: run this on each node with its --node-rank and
# one --rdzv-endpoint HOST:PORT) it runs under torchrun: DistributedDataParallel,
# NCCL on GPUs (one per local rank), gloo on CPU; rank 0 alone writes.
# --launcher torchrun runs under torchrun with one process too (NCCL and DDP on
# one GPU: bench/gpu_check.sh); auto (default) uses it only for more than one.
# The job asks --cmd for the GPUs the config's training.device needs (--gpu N,
# one per process; none for cpu; auto: one per process where sinfo lists GPUs),
# unless the --cmd names --gpu itself (cmd.sh does with SV_SLURM_GPUS set).
# A config with an ssl: block (MoCo, DINO) trains without labels: only the audio
# tables of <train-data> and of each --unlabelled-data DIR[,DIR] are read (and
# stamped), never utt2spk or spk2utt.
set -euo pipefail
[ -n "${SV_ROOT:-}" ] || . "$(dirname "$0")/../path.sh"   # $SV_ROOT: the toolkit, from any directory
cmd=$SV_ROOT/utils/run.py
force=false
nproc=1               # (old name of --nproc-per-node)
nproc_per_node=
nnodes=1
node_rank=0
rdzv_endpoint=        # HOST:PORT of node 0 (needed with --nnodes > 1)
unlabelled_data=      # label-free configs: more data dirs of audio, DIR[,DIR]
launcher=auto         # auto | torchrun | python (auto: torchrun for more than one process)
help_message="Usage: $0 [--cmd CMD] [--force true|false] [--nproc-per-node N] [--launcher auto|torchrun|python] [--nnodes M --node-rank R --rdzv-endpoint HOST:PORT] [--unlabelled-data DIR[,DIR]] <config.yaml> <train-data> <dir>"
. "$SV_ROOT/utils/parse_options.sh"
nproc_per_node=${nproc_per_node:-$nproc}
check_int nproc_per_node 1; check_int nnodes 1; check_int node_rank 0 $((10#$nnodes - 1))
[ $# -eq 3 ] || { echo -e "$help_message" 1>&2; exit 1; }
config=$1 data=$2 dir=$3
case $launcher in auto|torchrun|python) ;;
  *) echo "$0: --launcher $launcher: expected auto, torchrun or python" 1>&2; exit 1 ;; esac
if [ "$launcher" = python ] && { [ "$nnodes" -gt 1 ] || [ "$nproc_per_node" -gt 1 ]; }; then
  echo "$0: --launcher python runs one process; $nnodes node(s) x $nproc_per_node need torchrun" 1>&2
  exit 1
fi

label_free=$(python -m pyutils.cli.config_get "$config" ssl.method "")
if [ -n "$label_free" ]; then   # no labels: the audio tables of every data dir pooled
  mapfile -t stamp < <(python -m pyutils.training.selfsup.inputs "$config" "$data" ${unlabelled_data//,/ })
else
  [ -z "$unlabelled_data" ] || {
    echo "$0: --unlabelled-data needs a label-free config (an ssl: block); $config has none" 1>&2; exit 1; }
  mapfile -t stamp < <(python -m pyutils.training.inputs "$config" "$data")
fi
if [ "$force" != true ] && python -m pyutils.cli.marker check "$dir/.done" "${stamp[@]}"; then
  echo "$0: $dir is trained with this config and data (--force true to retrain)"; exit 0
fi
mkdir -p "$dir/log"
extra=()
if [ "$force" = true ]; then   # clean up once, here, before any rank starts
  extra=(--force)
  [ "$node_rank" -eq 0 ] && rm -rf "$dir/models" "$dir/.done" "$dir/final.pt" "$dir/train_summary.json"
fi
run_with=(python)
if [ "$nnodes" -gt 1 ]; then
  [ -n "$rdzv_endpoint" ] || { echo "$0: --nnodes $nnodes needs --rdzv-endpoint HOST:PORT" 1>&2; exit 1; }
  run_with=(torchrun --nnodes "$nnodes" --node-rank "$node_rank" --nproc-per-node "$nproc_per_node"
            --rdzv-backend c10d --rdzv-endpoint "$rdzv_endpoint" --rdzv-id "sv-$(basename "$dir")")
elif [ "$nproc_per_node" -gt 1 ] || [ "$launcher" = torchrun ]; then
  run_with=(torchrun --standalone --nproc-per-node "$nproc_per_node")
fi
# The GPUs this node's job needs, from the config's device, unless --cmd names --gpu.
gpu_opt=()
if [[ " $cmd " != *" --gpu "* && " $cmd " != *" --gpu="* ]]; then
  device=$(python -m pyutils.cli.config_get "$config" training.device auto)
  case $device in
    cpu) gpus=0 ;;
    cuda|cuda:*) gpus=$nproc_per_node ;;
    auto) gpus=0   # CUDA when there is one: on a cluster, when its nodes have GPUs
      if [[ $cmd != *utils/run.py* ]] && command -v sinfo > /dev/null &&
         sinfo -h -o %G 2> /dev/null | grep -q gpu; then
        gpus=$nproc_per_node
      fi ;;
    *) echo "$0: $config: training.device must be auto, cpu, cuda or cuda:N, got '$device'" 1>&2
       exit 1 ;;
  esac
  gpu_opt=(--gpu "$gpus")
fi
echo "$0: training $dir on $data ($config); progress in $dir/log/train.log"
$cmd "${gpu_opt[@]}" "$dir/log/train.log" "${run_with[@]}" -m pyutils.cli.train --config "$config" \
  --data "$data" --exp-dir "$dir" --unlabelled-data "$unlabelled_data" "${extra[@]}"
grep -h "epoch .*\(chunks\|utterances\)/s" "$dir/log/train.log" | tail -n 1 || true
