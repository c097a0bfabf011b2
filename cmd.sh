# Job launchers, as in Kaldi's cmd.sh: every parallel step runs
#   $train_cmd [--max-jobs-run K] JOB=1:N exp/.../log/x.JOB.log command ...
# Local (default): utils/run.py runs the jobs on this machine.
# Slurm: utils/slurm.py submits a job array with sbatch --wait; put partition
# or account flags in SLURM_EXTRA_ARGS, e.g. "--partition=cpu --account=me".
launcher=${SV_LAUNCHER:-local}
# $cuda_cmd runs the training stage (conf/slurm.conf maps --gpu/--mem/
# --num-threads/--time to sbatch flags, as Kaldi's slurm.pl).  steps/train.sh
# adds --gpu N from the training config's device: none for training.device: cpu,
# one per process for cuda, and for auto (the default) one per process where
# sinfo lists GPUs.  SV_SLURM_GPUS=N overrides that (0: never ask for a GPU).
# See docs/clusters.md.
# A site's own launcher: add a case below whose commands take the same
# arguments ([options] [JOB=1:N] LOG command ...), as Kaldi's queue.pl users do.
case "$launcher" in
  local) export train_cmd="utils/run.py" cpu_cmd="utils/run.py" cuda_cmd="utils/run.py" ;;
  slurm) export train_cmd="utils/slurm.py --mem 4G" cpu_cmd="utils/slurm.py --mem 2G"
         [[ ${SV_SLURM_GPUS:-} =~ ^[0-9]*$ ]] || {
           echo "cmd.sh: SV_SLURM_GPUS must be a number of GPUs, got '$SV_SLURM_GPUS'" 1>&2; return 1; }
         export cuda_cmd="utils/slurm.py --mem 8G${SV_SLURM_GPUS:+ --gpu $SV_SLURM_GPUS}"
         export SLURM_EXTRA_ARGS=${SLURM_EXTRA_ARGS:-} ;;
  *) echo "cmd.sh: unknown SV_LAUNCHER '$launcher' (local|slurm)" 1>&2; return 1 ;;
esac
