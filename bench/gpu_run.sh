#!/usr/bin/env bash
# The GPU check of issue 14, as one call on the lent H200 (no network, no streamlit there).
# bench/gpu_prepare.sh (run here first) splits the bundled GGUF and the wheels the box lacks over
# two carried folders: a first call stashes .gpu1 in /root/stash, this one brings .gpu2.
# Each stage has its own time limit so that one failure still leaves the others' figures;
# everything is logged under $OUT (or bench/out when run here).
set -u
OUT="${OUT:-bench/out/gpu}"; mkdir -p "$OUT"
STASH="${STASH:-/root/stash}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY="${PY:-python3}"
DEVICE="${DEVICE:-cuda}"
SCALE="${SCALE:-1}"   # 1 = the full check; a fraction shrinks every size for a CPU dry run
n() { awk -v x="$1" -v s="$SCALE" 'BEGIN { v = int(x * s); print (v < 1 ? 1 : v) }'; }
log() { echo "== $* ($(date -u +%T), ${SECONDS}s)" | tee -a "$OUT/summary.md"; }

log "setup"
if [ -d "$STASH" ] && [ -d .gpu2 ]; then
    cat "$STASH"/model.part-a .gpu2/model.part-b > /tmp/SmolLM2-135M-Instruct.Q4_1.gguf
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        "$STASH"/*.whl .gpu2/*.whl 2>&1 | tail -3
    export PYTHONPATH=/tmp/site
    export MARKETLAB_MODEL=/tmp/SmolLM2-135M-Instruct.Q4_1.gguf MARKETLAB_MODEL_CACHE=/tmp/mlcache
    CATALOG=.gpu2/amazon_products_sample_1000.csv
    sha256sum /tmp/SmolLM2-135M-Instruct.Q4_1.gguf | tee -a "$OUT/summary.md"
else
    CATALOG="${CATALOG:-../shared/data/real/amazon_products_promptcloud_2020/amazon_products_sample_1000.csv}"
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  $PY -c "import torch, transformers, duckdb, pandas; print('torch', torch.__version__, 'transformers', transformers.__version__, 'duckdb', duckdb.__version__, 'pandas', pandas.__version__)"
  $PY -c "import peft; print('peft', peft.__version__)"; } 2>&1 | tee -a "$OUT/summary.md"

log "1. raw generation throughput (headline prompt), batch 1..512, and 1,000 products x 3 headlines"
timeout 120 $PY bench/copy_throughput.py --model "${MARKETLAB_MODEL:-HuggingFaceTB/SmolLM2-135M-Instruct}" --device "$DEVICE" --batches "1,8,32,$(n 128),$(n 512)" --repeat 2 \
    --catalog "$(n 1000)" --catalog-batch "$(n 128)" 2>"$OUT/throughput.err" | tee "$OUT/throughput.md"

# 2026-12-04 on an H200: ~75 s per 128-product request (cost per decoding step x rounds, not per row), so
# twice the rows per call (~58 GiB of KV cache at ~1,100 prompt tokens); the per-call table says where time goes.
log "2. product path: Google RSA sets for 1,000 real Amazon products (generate_variants, few-shot prompt, gates, 3 rounds)"
timeout 240 $PY bench/copy_throughput.py --model "${MARKETLAB_MODEL:-HuggingFaceTB/SmolLM2-135M-Instruct}" --device "$DEVICE" --batches 1 --repeat 1 --rsa-sets "$(n 1000)" \
    --products-file "$CATALOG" --request-batch "$(n 256)" --max-rows "$(n 2304)" --sets-out "$OUT/rsa_sets.jsonl" \
    2>"$OUT/rsa.err" | tee "$OUT/rsa.md"

log "3. LoRA training (peft, r=16): step cost by shape, then 2 epochs on the accepted RSA sets"
timeout 150 $PY bench/tune_speed.py --model "${MARKETLAB_MODEL:-HuggingFaceTB/SmolLM2-135M-Instruct}" --device "$DEVICE" --shapes "8x64,32x512" --steps 10 \
    --sets "$OUT/rsa_sets.jsonl" --products-file "$CATALOG" --batch 32 --epochs 2 --out /tmp/adapter \
    2>"$OUT/tune.err" | tee "$OUT/tune.md"
# The adapter comes back in bfloat16 (half the bytes; files over 16 MiB do not come back).
$PY - <<'PY' 2>&1 | tee -a "$OUT/summary.md"
import os, shutil, torch
from safetensors.torch import load_file, save_file
src = "/tmp/adapter/adapter_model.safetensors"
if os.path.exists(src):
    out = os.environ.get("OUT", "bench/out/gpu")
    save_file({k: v.to(torch.bfloat16) for k, v in load_file(src).items()}, f"{out}/adapter_model.bf16.safetensors")
    shutil.copy("/tmp/adapter/adapter_config.json", f"{out}/adapter_config.json")
    print("adapter copied (bfloat16)")
PY

if [ "$SECONDS" -lt 420 ]; then
    log "4. product path, Meta ads, the same 1,000 products"
    timeout $((500 - SECONDS)) $PY bench/copy_throughput.py --model "${MARKETLAB_MODEL:-HuggingFaceTB/SmolLM2-135M-Instruct}" --device "$DEVICE" --batches 1 --repeat 1 --rsa-sets "$(n 1000)" \
        --channel meta --products-file "$CATALOG" --request-batch "$(n 128)" --max-rows "$(n 1152)" \
        2>"$OUT/meta.err" | tee "$OUT/meta.md"
fi
log "done"
