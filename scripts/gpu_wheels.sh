#!/usr/bin/env bash
# Wheels the lent GPU machine (device tool; Python 3.12, torch 2.11, transformers 5.17, no trl or
# bitsandbytes, no network) needs to run tests/benchmarks/bench_train.py with the versions Mirada is
# tested with. Downloads them into .whl/ (git-ignored) and checks they fit the 64 MiB the device
# tool carries beside the ~1 MB working tree. Then, with the device tool:
#   run(carry=[".whl"], command="python3 -m pip install -q --no-index --no-deps --no-compile \
#       --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD && \
#       PYTHONUNBUFFERED=1 python3 tests/benchmarks/bench_train.py --workdir /tmp/bench --json $OUT/bench_train.json")
# (torch, accelerate, tokenizers, safetensors, numpy, pandas, pyarrow, pyyaml, jinja2, pillow,
# matplotlib, psutil, xxhash, tqdm and scipy are already on that machine.)
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=(
  bitsandbytes==0.50.2 transformers==5.23.0 trl==1.16.0 peft==0.21.2 datasets==5.2.0 dill==0.4.1
  multiprocess==0.70.19 huggingface_hub==2.4.0 httpx2==2.16.2 httpcore2==2.16.2 pydantic==2.14.3
  pydantic_core==2.50.4 annotated-types typing-inspection
)
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d .whl "${WHEELS[@]}"
total=$(du -cb .whl/*.whl | tail -1 | cut -f1)
echo "$(ls .whl/*.whl | wc -l) wheels, $((total / 1024 / 1024)) MiB in .whl/ (the device tool carries at most 64 MiB)"
if [ "$total" -gt $((63 * 1024 * 1024)) ]; then
  echo "too large to carry with the working tree: drop transformers==5.23.0 and use the machine's own" >&2
  exit 1
fi
