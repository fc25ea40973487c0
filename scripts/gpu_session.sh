#!/usr/bin/env bash
# Every GPU figure of the profile and paper-recipe benchmarks, in as few commands as a short GPU lease allows.
#
#   bash scripts/gpu_session.sh profile [OUT]   # timm backbone alone + `segbench profile` of all methods (~5-8 min)
#   bash scripts/gpu_session.sh recipe [OUT]    # paper preset with/without feature cache + matrix projection
#   bash scripts/gpu_session.sh all [OUT]
#
# OUT defaults to reports/gpu. Each stage writes its JSON/CSV there with the device name and versions, plus
# nvidia_smi.txt and a log. Needs torch with CUDA, timm and segmentation-models-pytorch; on a machine that cannot
# reach a package index, put wheels in .whl/ (segmentation-models-pytorch is pure Python: `pip download --no-deps
# segmentation-models-pytorch==0.6.0 -d .whl`); they are installed into /tmp/site first.
set -uo pipefail
STAGE="${1:-all}"
OUT="${2:-reports/gpu}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi >"$OUT/nvidia_smi.txt" 2>&1 || echo "nvidia-smi not available" >"$OUT/nvidia_smi.txt"
status=0
if [ "$STAGE" = profile ] || [ "$STAGE" = all ]; then
  "$PY" scripts/bench_timm_backbone.py --device cuda --batch 1024 --out "$OUT/bench_timm_backbone_cuda.json" \
    2>&1 | tee "$OUT/log_timm.txt" || status=1
  # SegDINO with every variant; the baselines with fp32 eager and bf16 compile (max-autotune compiles for minutes)
  "$PY" scripts/bench_profile.py --device cuda --batch 1024 --warmup 10 --iters 50 --methods segdino \
    --out "$OUT" 2>&1 | tee "$OUT/log_profile.txt" || status=1
  mv "$OUT/profile_cuda.csv" "$OUT/profile_cuda_segdino.csv"; mv "$OUT/profile_cuda.json" "$OUT/profile_cuda_segdino.json"
  "$PY" scripts/bench_profile.py --device cuda --batch 256 --warmup 10 --iters 30 \
    --methods unet upernet dpt unet-small upernet-small dpt-small --variants float32:none bfloat16:default \
    --out "$OUT" 2>&1 | tee -a "$OUT/log_profile.txt" || status=1
fi
if [ "$STAGE" = recipe ] || [ "$STAGE" = all ]; then
  "$PY" scripts/bench_paper_recipe.py --device cuda --out "$OUT/bench_paper_recipe_cuda.json" \
    2>&1 | tee "$OUT/log_recipe.txt" || status=1
fi
exit $status
