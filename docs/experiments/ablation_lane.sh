#!/usr/bin/env bash
# One lane of the issue-12 ablation: for each run in turn, train resnet18 (resumable: rerun the same command after
# a stop), evaluate it on the validation, internal test and external splits, and copy its metadata and reports to
# docs/experiments/abl_<name>/ under the names compare.py reads. Two lanes side by side fill a 2-core machine.
# usage: docs/experiments/ablation_lane.sh NAME "train options" [NAME "options" ...]
# The options come after the defaults below (6 epochs, (source, label) balance, COVID-CXNet held out), so they
# override them: "--epochs 14", "--balance label".
set -u
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
PY=${PYTHON:-python}
while [ $# -ge 2 ]; do
  name=$1; opts=$2; shift 2
  dir=runs/abl/$name
  mkdir -p "$dir/weights"
  cp -n weights/lungs.pt weights/lungs.json "$dir/weights/"  # lung crops, and the heatmap/lung checks, need it
  if [ ! -f "$dir/weights/resnet18.pt" ]; then
    resume=""; [ -f "$dir/resnet18.state.pt" ] && resume="--resume"
    echo "$(date +%T) train $name $opts" >> runs/abl/log
    # shellcheck disable=SC2086  # the options are meant to split into words
    $PY -m covidnet train --backbone resnet18 --epochs 6 --balance source-label --holdout covid-cxnet \
        $opts $resume --state-dir "$dir" --out "$dir/weights" > "$dir/train.log" 2>&1 || { echo "$(date +%T) FAIL train $name" >> runs/abl/log; continue; }
  fi
  for split in val test external; do
    [ -f "$dir/$split.json" ] && continue
    echo "$(date +%T) evaluate $name $split" >> runs/abl/log
    $PY -m covidnet --weights-dir "$dir/weights" evaluate --metadata ../shared/data/cxr/metadata.csv \
        --split $split --split-file weights/split.csv --out "$dir/$split.json" > "$dir/eval_$split.log" 2>&1 \
        || echo "$(date +%T) FAIL eval $name $split" >> runs/abl/log
  done
  out=docs/experiments/abl_$name
  mkdir -p "$out"
  cp "$dir/weights/resnet18.json" "$out/resnet18.json"
  cp "$dir/val.json" "$out/validation.json"; cp "$dir/test.json" "$out/internal_test.json"; cp "$dir/external.json" "$out/external.json"
  echo "$(date +%T) done $name" >> runs/abl/log
done
