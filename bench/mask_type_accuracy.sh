#!/usr/bin/env bash
# How much harder is each mask type? dlib-resnet on LFW view 2, masked-unmasked, one mask type at a
# time, all on the same pairs; plus the unmasked-unmasked control and synth throughput per type.
#   bash bench/mask_type_accuracy.sh [LFW_ROOT] [WORK] [TYPES]
# For each type (default: surgical n95 kn95 cloth paper): a full-LFW `mfrbench synth lfw --masks
# TYPE` (2 workers; its wall time gives source images/s), `mfrbench pairs lfw --official pairs.txt`
# (seed 0: the side that wears the mask is the same pair by pair for every type, checked below), then
# `mfrbench eval --model plugin:dlib-resnet` with one shared embedding cache (the unmasked side is
# embedded once). Prints one line per type and the pair-list digest each protocol has.
# About 2.5 min synth + 5 min eval per type on 2 cores, plus 7 min for the first eval.
set -euo pipefail
LFW=${1:-../shared/data/lfw}
WORK=${2:-$(mktemp -d /tmp/mask-type-accuracy-XXXX)}
TYPES=${3:-surgical n95 kn95 cloth paper}
MB=${MFRBENCH:-.venv/bin/mfrbench}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$WORK"
echo "work folder: $WORK"

# The pair list a protocol scores, as source paths and which side is masked: equal for every type.
pairs_digest() {
  "$PY" - "$1" <<'EOF'
import hashlib, json, sys
p = json.load(open(sys.argv[1]))
img = {i["id"]: i for i in p["images"]}
rows = [(q["label"], img[q["a"]]["src_path"], img[q["a"]]["masked"],
         img[q["b"]]["src_path"], img[q["b"]]["masked"]) for q in p["pairs"]]
print(hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16], len(rows))
EOF
}

evaluate() {  # protocol, run name
  "$MB" eval --model plugin:dlib-resnet --protocol "$1" --root "$LFW" --out "$WORK/run-$2" \
    --cache-dir "$WORK/cache" --no-plots --n-boot 200 > "$WORK/log-$2.txt" 2>&1
  grep '^Accuracy [0-9]' "$(find "$WORK/run-$2" -name report.md | head -1)"
}

for t in $TYPES; do
  out="$WORK/synth-$t"
  if [ ! -f "$out/manifest.parquet" ]; then
    start=$(date +%s.%N)
    "$MB" synth lfw --root "$LFW" --masks "$t" --out "$out" --workers 2 > "$WORK/synth-$t.txt" 2>&1
    end=$(date +%s.%N)
    n=$("$PY" -c "import pyarrow.parquet as pq, sys; t = pq.read_table(sys.argv[1], columns=['src_path']); print(len(set(t['src_path'].to_pylist())))" "$out/manifest.parquet")
    echo "$t synth: $n source images in $(printf '%.1f' "$(echo "$end - $start" | bc)") s = $(printf '%.1f' "$(echo "$n / ($end - $start)" | bc -l)") img/s"
  fi
  proto="$WORK/$t.json"
  "$MB" pairs lfw "$out/manifest.parquet" --official "$LFW/pairs.txt" --pair-types masked-unmasked \
    --seed 0 --name "acc-$t" --out "$proto" > /dev/null
  echo "$t pairs: $(pairs_digest "$proto")"
  echo "$t masked-unmasked: $(evaluate "$proto" "$t")"
done
first=$(echo "$TYPES" | awk '{print $1}')
proto="$WORK/control.json"
"$MB" pairs lfw "$WORK/synth-$first/manifest.parquet" --official "$LFW/pairs.txt" \
  --pair-types unmasked-unmasked --seed 0 --name acc-control --out "$proto" > /dev/null
echo "unmasked-unmasked: $(evaluate "$proto" control)"
echo "paired, each type against the first (same pairs, same photos):"
"$PY" bench/mask_type_paired.py "$WORK" "$TYPES"
