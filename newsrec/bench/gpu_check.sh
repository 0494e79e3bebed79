#!/usr/bin/env bash
# One prepared GPU check of the Qwen3-VL-Reranker engine (run from the repository root on a CUDA machine).
#
#   OUT=/some/dir bash newsrec/bench/gpu_check.sh
#
# Steps (each has its own time limit and log, so one failure never hides the others); about 12 minutes:
#   1. versions + nvidia-smi (+ whether flash-attn imports: batched vision attention uses its varlen kernel)
#   2. the tiny-model equivalence tests on CUDA in fp32 (engine == reference, batched vision attention ==
#      per-photo loop, feature store round trip), if pytest is installed
#   3. bench rerank --config 8b (bf16, 100 docs, 1 photo each): speedup (cold), speedup_indexed (photo
#      features from the index-time store), MFU. Targets: <= 1.5 s cold, <= 1.0 s indexed, >= 10x indexed
#   4. bench rerank --config 2b (target <= 0.5 s indexed)
#   5. bench rerank --accuracy --config 2b (bf16 engine/reference vs fp32 copy, 16 docs; ratio <= 1.25,
#      top-10 set equal to fp32)
# Figures land in $OUT/bench_8b.json, bench_2b.json and accuracy_2b.json. Needs the Qwen3-VL tokenizer
# files and, for real photos, newsimages-dev: NEWSREC_SHARED (default ../shared, else ./shared).
set -u
OUT=${OUT:-gpu-out}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
if [ -z "${NEWSREC_SHARED:-}" ]; then
  if [ -d ../shared/models ]; then NEWSREC_SHARED=../shared; else NEWSREC_SHARED=shared; fi
fi
export NEWSREC_SHARED HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
REF_DOCS=${REF_DOCS:-50}  # lower (e.g. 30) if the reference is too slow; its pairs/s is extrapolated

echo "shared=$NEWSREC_SHARED" | tee "$OUT/env.txt"
nvidia-smi >> "$OUT/env.txt" 2>&1
"$PY" -c "import torch, transformers, PIL; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
'transformers', transformers.__version__, 'pillow', PIL.__version__)" >> "$OUT/env.txt" 2>&1
"$PY" -c "import flash_attn; print('flash_attn', flash_attn.__version__)" >> "$OUT/env.txt" 2>&1 || echo "no flash_attn (sdpa)" >> "$OUT/env.txt"
cat "$OUT/env.txt"

if "$PY" -c "import pytest" 2>/dev/null; then
  NEWSREC_TEST_DEVICE=cuda timeout 150 "$PY" -m pytest tests/test_qwen3_vl_reranker.py tests/test_qwen3_vl_features.py \
    -q -p no:cacheprovider -m "not slow" \
    > "$OUT/tests_cuda.txt" 2>&1
  echo "tiny equivalence tests on CUDA: rc=$? ($(tail -n 1 "$OUT/tests_cuda.txt"))"
else
  echo "pytest not installed: skipping the CUDA equivalence tests" | tee "$OUT/tests_cuda.txt"
fi

for CONFIG in 8b 2b; do
  LIMIT=200; [ "$CONFIG" = 2b ] && LIMIT=150
  timeout "$LIMIT" "$PY" -m newsrec.bench.rerank --config "$CONFIG" --docs 100 --images-per-doc 1 \
    --reference-docs "$REF_DOCS" --json > "$OUT/bench_$CONFIG.json" 2> "$OUT/bench_$CONFIG.log"
  echo "bench $CONFIG: rc=$?"
  cat "$OUT/bench_$CONFIG.json"
  tail -n 5 "$OUT/bench_$CONFIG.log"
done

timeout 150 "$PY" -m newsrec.bench.rerank --accuracy --config 2b --docs 16 --json > "$OUT/accuracy_2b.json" \
  2> "$OUT/accuracy_2b.log"
echo "accuracy 2b: rc=$?"
cat "$OUT/accuracy_2b.json"
tail -n 5 "$OUT/accuracy_2b.log"
