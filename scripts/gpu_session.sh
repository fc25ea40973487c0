#!/usr/bin/env bash
# Every GPU figure of the profile and paper-recipe benchmarks, in as few commands as a short GPU lease allows.
#
#   bash scripts/gpu_session.sh profile [OUT]   # the three parts below (~5-8 min; over a 10-minute limit per command,
#                                               # run them one per command):
#   bash scripts/gpu_session.sh timm [OUT]               # the bare timm backbone, timm's benchmark method
#   bash scripts/gpu_session.sh profile-segdino [OUT]    # `segbench profile` of SegDINO, fp32 / bf16 / 3 compile modes
#   bash scripts/gpu_session.sh profile-baselines [OUT]  # UNet, UPerNet, DPT and -small, fp32 and bf16 compiled
#   bash scripts/gpu_session.sh recipe [OUT]    # paper preset with/without feature cache, matrix projection, and
#                                               # 1/2/4/8 SegDINO runs side by side (--runs-per-gpu)
#   bash scripts/gpu_session.sh recipe-bf16 [OUT]  # per-method costs, projection and concurrency with bf16 autocast
#   bash scripts/gpu_session.sh recipe-compile [OUT]  # the same with the decoder compiled (reduce-overhead: CUDA graphs)
#   bash scripts/gpu_session.sh scoring [OUT]   # the test split's scoring in the node's cores vs one (~1 min, no GPU)
#   bash scripts/gpu_session.sh all [OUT]
#
# OUT defaults to reports/gpu. Each stage writes its JSON/CSV there with the device name and versions, plus
# nvidia_smi.txt and a log; the scripts rewrite their files after every finished row or section, so a command killed
# at a time limit keeps what it measured (recipe JSON: "complete": false until the end). Needs torch with CUDA, timm
# (>= 1.0.30: DINOv3 with Meta's RoPE rescaling), segmentation-models-pytorch and submitit; on a machine that cannot reach a package index,
# put their wheels in .whl/ (all pure Python), fetched where pip works:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp -d .whl \
#     segmentation-models-pytorch==0.6.0 timm==1.0.31 submitit==1.5.4
# They are installed into /tmp/site first. Every stage starts with a preflight (imports, versions, a DINOv3 model
# built on the meta device) that stops in seconds, with exit code 3, when something is missing.
# A plumbing check anywhere (small and slow, on the CPU):
#   DEVICE=cpu BATCH=2 ITERS=2 BACKBONE=test RECIPE_ARGS="--train 24 --test 8 --epochs 1 --probe-steps 3" \
#     RECIPE_BF16_ARGS="--train 24 --test 8 --epochs 1 --probe-steps 3 --concurrency 2 --concurrency-epochs 1" \
#     bash scripts/gpu_session.sh all /tmp/gpu-plumbing
set -uo pipefail
STAGE="${1:-all}"
case "$STAGE" in
  all|profile|timm|profile-segdino|profile-baselines|recipe|recipe-bf16|recipe-compile|scoring) ;;
  *) echo "unknown stage '$STAGE': all, profile, timm, profile-segdino, profile-baselines, recipe, recipe-bf16," \
       "recipe-compile, scoring" >&2; exit 2 ;;
esac
OUT="${2:-reports/gpu}"
PY="${PYTHON:-python3}"
DEVICE="${DEVICE:-cuda}"; DEV="${DEVICE%%:*}"; BATCH="${BATCH:-1024}"; ITERS="${ITERS:-50}"; BACKBONE="${BACKBONE:-dinov3_vits16}"
TIMM_MODEL="vit_small_patch16_dinov3"; [ "$BACKBONE" = test ] && TIMM_MODEL="vit_small_patch16_dinov3 --size 64"
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi >"$OUT/nvidia_smi.txt" 2>&1 || echo "nvidia-smi not available" >"$OUT/nvidia_smi.txt"
"$PY" - <<'PREFLIGHT' 2>&1 | tee "$OUT/preflight.txt"
import platform, torch, timm, segmentation_models_pytorch as smp, submitit
import benchmark.sweep, benchmark.profiling  # noqa: F401 - the scripts' own imports
timm.create_model("vit_small_patch16_dinov3_qkvb", pretrained=False, device="meta", rope_rescale_coords=2)
print(f"python {platform.python_version()} torch {torch.__version__} (cuda {torch.version.cuda}, available "
      f"{torch.cuda.is_available()}) timm {timm.__version__} smp {smp.__version__} submitit {submitit.__version__}")
PREFLIGHT
if [ "${PIPESTATUS[0]}" -ne 0 ]; then
  echo "preflight failed: a package is missing or too old; carry wheels in .whl/ (see this script's header)" >&2
  exit 3
fi
status=0
want() {   # is stage $1 asked for? `profile` is its three parts, `all` everything but recipe-compile
  [ "$STAGE" = "$1" ] || [ "$STAGE" = all ] || { [ "$STAGE" = profile ] && [[ "$1" == timm || "$1" == profile-* ]]; }
}
if want timm; then
  # shellcheck disable=SC2086
  "$PY" scripts/bench_timm_backbone.py --device "$DEVICE" --batch "$BATCH" --model $TIMM_MODEL --steps "$ITERS" \
    --out "$OUT/bench_timm_backbone_$DEV.json" 2>&1 | tee "$OUT/log_timm.txt" || status=1
fi
if want profile-segdino; then
  # SegDINO with every variant (max-autotune compiles for minutes)
  "$PY" scripts/bench_profile.py --device "$DEVICE" --backbone "$BACKBONE" --batch "$BATCH" --warmup 10 \
    --iters "$ITERS" --methods segdino --variants float32:none bfloat16:none bfloat16:default \
    bfloat16:reduce-overhead bfloat16:max-autotune --out "$OUT" --stem "profile_${DEV}_segdino" \
    2>&1 | tee "$OUT/log_profile_segdino.txt" || status=1
fi
if want profile-baselines; then
  # the baselines with fp32 eager and bf16 compile
  "$PY" scripts/bench_profile.py --device "$DEVICE" --backbone "$BACKBONE" --batch "$((BATCH / 4 > 0 ? BATCH / 4 : 1))" \
    --warmup 10 --iters "$ITERS" --methods unet upernet dpt unet-small upernet-small dpt-small \
    --variants float32:none bfloat16:default --out "$OUT" --stem "profile_${DEV}_baselines" \
    2>&1 | tee "$OUT/log_profile_baselines.txt" || status=1
fi
if want recipe; then
  # shellcheck disable=SC2086
  "$PY" scripts/bench_paper_recipe.py --device "$DEVICE" ${RECIPE_ARGS:---concurrency 1,2,4,8} --out "$OUT/bench_paper_recipe_$DEV.json" \
    2>&1 | tee "$OUT/log_recipe.txt" || status=1
fi
if want recipe-bf16; then
  # shellcheck disable=SC2086
  "$PY" scripts/bench_paper_recipe.py --device "$DEVICE" --probe-only --set train.amp_dtype=bfloat16 \
    ${RECIPE_BF16_ARGS:---concurrency 1,4,8} --out "$OUT/bench_paper_recipe_${DEV}_bf16.json" \
    2>&1 | tee "$OUT/log_recipe_bf16.txt" || status=1
fi
if want scoring; then   # CPU workers scoring the test split while the GPU predicts: the node's speedup
  "$PY" scripts/bench_scoring.py --out "$OUT/bench_scoring_node.json" 2>&1 | tee "$OUT/log_scoring.txt" || status=1
fi
if [ "$STAGE" = recipe-compile ]; then   # not in `all`: compiling every decoder takes minutes
  # shellcheck disable=SC2086
  "$PY" scripts/bench_paper_recipe.py --device "$DEVICE" --probe-only --set train.amp_dtype=bfloat16 \
    --set train.compile=reduce-overhead ${RECIPE_COMPILE_ARGS:---concurrency 1,4} \
    --out "$OUT/bench_paper_recipe_${DEV}_bf16_compiled.json" 2>&1 | tee "$OUT/log_recipe_compile.txt" || status=1
fi
exit $status
