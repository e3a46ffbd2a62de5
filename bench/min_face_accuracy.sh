#!/usr/bin/env bash
# Does a synth option change what a model measures? View-2 pairs from each synth output, one eval each.
#   bash bench/min_face_accuracy.sh OUT_A OUT_B [LFW_ROOT] [WORK]
# OUT_A, OUT_B: full-LFW `mfrbench synth lfw` output folders (e.g. the out-native and out-auto folders
# that bench/synth_variants.py --every 1 leaves in its scratch folder). For each and for the pair
# types masked-unmasked (colours by seeded hash) and unmasked-unmasked: `mfrbench pairs lfw
# --official pairs.txt`, then `mfrbench eval --model plugin:dlib-resnet`; prints each report's
# accuracy line. About 7 min per eval on 2 cores (~9,000 images).
set -euo pipefail
A=${1:?synth output A}; B=${2:?synth output B}
LFW=${3:-../shared/data/lfw}
WORK=${4:-$(mktemp -d /tmp/min-face-accuracy-XXXX)}
MB=${MFRBENCH:-.venv/bin/mfrbench}
for out in "$A" "$B"; do
  name=$(basename "$out")
  for pt in masked-unmasked unmasked-unmasked; do
    extra=()
    [ "$pt" = masked-unmasked ] && extra=(--colors black,white,blue)
    proto="$WORK/$name-$pt.json"
    $MB pairs lfw "$out/manifest.parquet" --official "$LFW/pairs.txt" --pair-types "$pt" \
      "${extra[@]}" --seed 0 --name "acc-$name-$pt" --out "$proto" > /dev/null
    $MB eval --model plugin:dlib-resnet --protocol "$proto" --root "$LFW" \
      --out "$WORK/run-$name-$pt" --no-plots --n-boot 200 > "$WORK/log-$name-$pt.txt" 2>&1
    report=$(find "$WORK/run-$name-$pt" -name report.md | head -1)
    echo "$name $pt: $(grep '^Accuracy [0-9]' "$report")"
  done
done
