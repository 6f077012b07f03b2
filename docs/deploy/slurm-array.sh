#!/bin/bash
# Slurm job array: one detect run over a shared folder in 8 tasks, then the merge once all
# succeeded.
#   jobid=$(sbatch --parsable docs/deploy/slurm-array.sh /shared/images /shared/out)
#   sbatch --dependency=afterok:$jobid --wrap "tokenclip merge --out /shared/out"
# The shard is SLURM_ARRAY_TASK_ID minus SLURM_ARRAY_TASK_MIN, so --array=1-8 works as well.
#SBATCH --job-name=tokenclip-audit
#SBATCH --array=0-7
#SBATCH --cpus-per-task=8
#SBATCH --mem=8G
#SBATCH --output=tokenclip-%A_%a.log
set -euo pipefail
images=${1:?usage: slurm-array.sh IMAGES OUT}
out=${2:?usage: slurm-array.sh IMAGES OUT}
exec tokenclip --offline detect --shards 8 --out "$out" "$images"
