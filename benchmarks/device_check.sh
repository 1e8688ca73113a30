#!/usr/bin/env bash
# The GPU checks of a session lent a device machine, as one prepared command that fits one
# 10-minute call (its steps' caps add up to 530 s):
#
#     run(command="bash benchmarks/device_check.sh", timeout_s=590)
#
# It uses the device image's python3 (which holds torch, numpy, pandas, pyyaml, tqdm, pillow)
# with src/ on PYTHONPATH: no install, and no data, since preflight and the benchmarks draw
# synthetic inputs. Each step has its own time cap, so one hang cannot eat the others; every
# log lands in $OUT (the device tool's return folder; ./device-out elsewhere), at most 8 files.
# DEVICE=cpu runs the same steps on a CPU (slowly) to check the script itself.
set -uo pipefail
OUT=${OUT:-device-out}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
export PYTHONPATH=src PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}

step() {  # step NAME CAP_SECONDS COMMAND...: run it under a cap, log to $OUT/NAME.log
  local name=$1 cap=$2
  shift 2
  echo "== $name (cap ${cap}s)"
  local start=$SECONDS
  timeout -k 10 "$cap" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  tail -n 40 "$OUT/$name.log"
  echo "== $name rc=$rc in $((SECONDS - start)) s"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt"

# Every run of the cifar10 tier: 2 steps at its own batch (bf16 where the tier says), fine-
# tuning, stage 1 and two halvings from those checkpoints, each kind of sample set; peak GiB.
step preflight 200 "$PY" -m frugaldiff.cli preflight --config configs/cifar10.yaml \
  --device "$DEVICE" --batch 0 --json "$OUT/preflight.json"
# The paper tiers' largest training steps at their own batches on synthetic latents: SpeeD's
# DiT-XL/2 at 256 and MicroDiT's masked MicroDiT-Tiny/2 at 1024 (sampling needs the VAE).
step preflight_paper 90 bash -c "'$PY' -m frugaldiff.cli preflight --device '$DEVICE' \
  --config configs/paper/speed_imagenet256.yaml --runs speed --batch 0 && '$PY' -m \
  frugaldiff.cli preflight --device '$DEVICE' --config configs/paper/microdit_imagenet256.yaml \
  --runs masked-deferred-75 --batch 0"
# Images/s and peak memory of the named sizes in bf16 (issue 4: the DiT sizes).
step train_step 90 "$PY" benchmarks/train_step.py --device "$DEVICE" --bf16 --batch 64 \
  --steps 5 --sizes unet-cifar10 dit-cifar10 microdit-cifar10 DiT-S/2 DiT-B/2 DiT-XL/2
# Deferred masking at 50 % and 75 % / unmasked: step time and peak-memory ratios (issue 6).
step masked_step 50 "$PY" benchmarks/masked_step.py --device "$DEVICE" \
  --size microdit-cifar10 --batch 128
# speed / baseline training-step time, target <= 1.02 (issue 4).
step speed_overhead 50 "$PY" benchmarks/speed_overhead.py --device "$DEVICE" \
  --size dit-cifar10 --batch 128
# Guided teacher sampling time / each halving's student, beside the NFE ratio (issue 5).
step distill_speed 50 "$PY" benchmarks/distill_speed.py --device "$DEVICE" \
  --config configs/cifar10.yaml --batch 64
