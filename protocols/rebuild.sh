#!/usr/bin/env bash
# Rebuild the shipped LFW protocols byte for byte (same mfrbench version, same LFW files).
#   bash protocols/rebuild.sh [LFW_ROOT] [WORK_DIR] [OUT_DIR]
# LFW_ROOT: the deep-funneled LFW with pairs.txt (default ../shared/data/lfw)
# WORK_DIR: where the synth output goes (default out/lfw-synth; reused if already complete)
# OUT_DIR:  where the protocol files are written (default protocols)
set -euo pipefail
LFW=${1:-../shared/data/lfw}
WORK=${2:-out/lfw-synth}
OUT=${3:-protocols}
MB=${MFRBENCH:-mfrbench}
HERE=$(cd "$(dirname "$0")" && pwd)
CITE="@$HERE/citations/lfw.bib"

# 1. Detect, landmark, mask and crop all 13,233 images (about 5 minutes with 2 workers).
$MB synth lfw --root "$LFW" --out "$WORK" --colors black,white,blue --roi upper-half --size 112 \
    --detector mtcnn --min-face native --landmarks dlib --margin 15 --face-policy center --seed 0 --workers 2

M="$WORK/manifest.parquet"
# 2. The official view-2 pairs, second image masked (colour by seeded hash).
$MB pairs lfw "$M" --official "$LFW/pairs.txt" --pair-types masked-unmasked \
    --colors black,white,blue --seed 0 --name lfw-view2-masked-v1 --citation "$CITE" \
    --description "LFW view 2 (official 6000 pairs, 10 folds) with the second image of each pair wearing a synthetic mask (LFW masking paper polygon: dlib points 3..15 and 29 numbered 1..68 as in the paper; colour black, white or sky blue by seeded hash); MTCNN + dlib 68 landmarks; upper-half ROI at 112x56; first image unmasked with the same crop." \
    --out "$OUT/lfw-view2-masked-v1.json"
# 3. Its unmasked control: the same pairs, both sides unmasked.
$MB pairs lfw "$M" --official "$LFW/pairs.txt" --pair-types unmasked-unmasked --seed 0 \
    --name lfw-view2-unmasked-v1 --citation "$CITE" \
    --description "Unmasked control for lfw-view2-masked-v1: the same official LFW view 2 pairs, both images unmasked, same MTCNN face boxes, five points and 68 anchors, upper-half ROI at 112x56." \
    --out "$OUT/lfw-view2-unmasked-v1.json"
# 4. Ten identity-disjoint folds, masked probe vs unmasked reference plus the unmasked control.
$MB pairs lfw "$M" --folds 10 --per-fold 300 --pair-types masked-unmasked,unmasked-unmasked \
    --colors black,white,blue --seed 0 --name lfw-masked-disjoint-v1 --citation "$CITE" \
    --description "10 identity-disjoint folds of 300 genuine + 300 impostor LFW pairs (no identity in two folds), each pair emitted twice: masked probe vs unmasked reference, and the unmasked control over the same photos. Synthetic masks as in lfw-view2-masked-v1; upper-half ROI at 112x56." \
    --out "$OUT/lfw-masked-disjoint-v1.json"
