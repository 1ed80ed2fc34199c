#!/usr/bin/env bash
# One lane of experiments: for each run in turn, train $BACKBONE (default resnet18; resumable: rerun the same
# command after a stop), evaluate it on the validation, internal test and external splits, and copy its metadata
# and reports to docs/experiments/${PREFIX}<name>/ (PREFIX default abl_) under the names compare.py reads. Two
# lanes side by side fill a 2-core machine.
# usage: [BACKBONE=…] [PREFIX=…] [DEFAULTS="…"] docs/experiments/ablation_lane.sh NAME "train options" [NAME …]
# The options come after $DEFAULTS (issue 12's: 6 epochs, (source, label) balance, COVID-CXNet held out), so they
# override them: "--epochs 14", "--balance label".
set -u
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
PY=${PYTHON:-python}
BACKBONE=${BACKBONE:-resnet18}
PREFIX=${PREFIX:-abl_}
DEFAULTS=${DEFAULTS:-"--epochs 6 --balance source-label --holdout covid-cxnet"}
while [ $# -ge 2 ]; do
  name=$1; opts=$2; shift 2
  dir=runs/abl/$name
  mkdir -p "$dir/weights"
  cp -n weights/lungs.pt weights/lungs.json "$dir/weights/"  # lung crops, and the heatmap/lung checks, need it
  cp -n runs/abl/lung_boxes.*.json "$dir/" 2>/dev/null  # boxes found once serve every run
  if [ ! -f "$dir/weights/$BACKBONE.pt" ]; then
    resume=""; [ -f "$dir/$BACKBONE.state.pt" ] && resume="--resume"
    echo "$(date +%T) train $name $opts" >> runs/abl/log
    # shellcheck disable=SC2086  # the options are meant to split into words
    $PY -m covidnet train --backbone "$BACKBONE" $DEFAULTS $opts $resume --state-dir "$dir" --out "$dir/weights" > "$dir/train.log" 2>&1 || { echo "$(date +%T) FAIL train $name" >> runs/abl/log; continue; }
  fi
  for split in val test external; do
    [ -f "$dir/$split.json" ] && continue
    echo "$(date +%T) evaluate $name $split" >> runs/abl/log
    $PY -m covidnet --weights-dir "$dir/weights" evaluate --metadata ../shared/data/cxr/metadata.csv \
        --split $split --split-file weights/split.csv --out "$dir/$split.json" > "$dir/eval_$split.log" 2>&1 \
        || echo "$(date +%T) FAIL eval $name $split" >> runs/abl/log
  done
  out=docs/experiments/$PREFIX$name
  mkdir -p "$out"
  cp "$dir/weights/$BACKBONE.json" "$out/$BACKBONE.json"
  cp "$dir/val.json" "$out/validation.json"; cp "$dir/test.json" "$out/internal_test.json"; cp "$dir/external.json" "$out/external.json"
  echo "$(date +%T) done $name" >> runs/abl/log
done
