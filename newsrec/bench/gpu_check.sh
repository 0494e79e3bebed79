#!/usr/bin/env bash
# One prepared GPU check of the Qwen3-VL-Reranker engine (run from the repository root on a CUDA machine).
#
#   OUT=/some/dir bash newsrec/bench/gpu_check.sh
#
# Steps (each has its own time limit and log, so one failure never hides the others); about 12 minutes,
# plus up to 7 for step 6:
#   1. versions + nvidia-smi (+ whether flash-attn imports: batched vision attention uses its varlen kernel)
#   2. the tiny-model equivalence tests on CUDA in fp32 (engine == reference, batched vision attention ==
#      per-photo loop, feature store round trip, score_many == score per query), if pytest is installed
#   3. bench rerank --config 8b (bf16, 100 docs, 1 photo each): speedup (cold), speedup_indexed (photo
#      features from the index-time store), MFU. Targets: <= 1.5 s cold, <= 1.0 s indexed, >= 10x indexed
#   4. bench rerank --config 2b (target <= 0.5 s indexed)
#   5. bench rerank --accuracy --config 2b (bf16 engine/reference vs fp32 copy, 16 docs; ratio <= 1.25,
#      top-10 set equal to fp32)
#   6. bench serve --size 2b on cuda: `newsrec serve` with a random 2B model, 60 requests x 20 stories,
#      20 concurrent clients vs one at a time, "shared" and "distinct" (every request its own query,
#      merged by score_many) workloads. Target: speedup >= 2 in both, 0 errors
# Figures land in $OUT/bench_8b.json, bench_2b.json, accuracy_2b.json and serve_2b.json. Needs the
# Qwen3-VL tokenizer files and, for real photos, newsimages-dev: NEWSREC_SHARED (default ../shared,
# else ./shared). STEPS picks steps (default "tests rerank accuracy serve"; e.g. STEPS=serve).
set -u
OUT=${OUT:-gpu-out}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
if [ -z "${NEWSREC_SHARED:-}" ]; then
  if [ -d ../shared/models ]; then NEWSREC_SHARED=../shared; else NEWSREC_SHARED=shared; fi
fi
export NEWSREC_SHARED HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
STEPS=${STEPS:-tests rerank accuracy serve}
step() { case " $STEPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
REF_DOCS=${REF_DOCS:-50}  # lower (e.g. 30) if the reference is too slow; its pairs/s is extrapolated

echo "shared=$NEWSREC_SHARED" | tee "$OUT/env.txt"
nvidia-smi >> "$OUT/env.txt" 2>&1
"$PY" -c "import torch, transformers, PIL; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
'transformers', transformers.__version__, 'pillow', PIL.__version__)" >> "$OUT/env.txt" 2>&1
"$PY" -c "import flash_attn; print('flash_attn', flash_attn.__version__)" >> "$OUT/env.txt" 2>&1 || echo "no flash_attn (sdpa)" >> "$OUT/env.txt"
cat "$OUT/env.txt"

if ! step tests; then
  echo "tests: skipped (STEPS)"
elif "$PY" -c "import pytest" 2>/dev/null; then
  NEWSREC_TEST_DEVICE=cuda timeout 150 "$PY" -m pytest tests/test_qwen3_vl_reranker.py tests/test_qwen3_vl_features.py \
    tests/test_qwen3_vl_score_many.py -q -p no:cacheprovider -m "not slow" \
    > "$OUT/tests_cuda.txt" 2>&1
  echo "tiny equivalence tests on CUDA: rc=$? ($(tail -n 1 "$OUT/tests_cuda.txt"))"
else
  echo "pytest not installed: skipping the CUDA equivalence tests" | tee "$OUT/tests_cuda.txt"
fi

for CONFIG in 8b 2b; do
  step rerank || break
  LIMIT=200; [ "$CONFIG" = 2b ] && LIMIT=150
  timeout "$LIMIT" "$PY" -m newsrec.bench.rerank --config "$CONFIG" --docs 100 --images-per-doc 1 \
    --reference-docs "$REF_DOCS" --json > "$OUT/bench_$CONFIG.json" 2> "$OUT/bench_$CONFIG.log"
  echo "bench $CONFIG: rc=$?"
  cat "$OUT/bench_$CONFIG.json"
  tail -n 5 "$OUT/bench_$CONFIG.log"
done

if step accuracy; then
  timeout 150 "$PY" -m newsrec.bench.rerank --accuracy --config 2b --docs 16 --json > "$OUT/accuracy_2b.json" \
    2> "$OUT/accuracy_2b.log"
  echo "accuracy 2b: rc=$?"
  cat "$OUT/accuracy_2b.json"
  tail -n 5 "$OUT/accuracy_2b.log"
fi

if step serve; then
  # The server process builds (and saves) a random 2B checkpoint first: about a minute of the limit.
  NEWSREC_HOME=${NEWSREC_HOME:-$(mktemp -d)} timeout 420 "$PY" -m newsrec bench serve --size 2b --device cuda \
    --threads 0 --files "$NEWSREC_SHARED/models/qwen3-vl-2b" --json > "$OUT/serve_2b.json" 2> "$OUT/serve_2b.log"
  echo "bench serve 2b: rc=$?"
  cat "$OUT/serve_2b.json"
  tail -n 5 "$OUT/serve_2b.log"
fi
