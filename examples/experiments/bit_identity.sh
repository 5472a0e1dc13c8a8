#!/usr/bin/env bash
# Bit-identity check (used for issue 26): trains one hierarchical run, one full run (with block schedule and
# learning-rate factors), and a small stacked sweep with the given expfam, then prints one digest per
# run folder over every array of params.npz/checkpoint.npz, metrics.json and history.csv (minus timing columns).
# usage: bash examples/experiments/bit_identity.sh /path/to/venv/bin OUTDIR   (compare the printed digests of two versions)
set -euo pipefail
BIN="$1"; OUT="$2"; rm -rf "$OUT"; mkdir -p "$OUT"; cd "$OUT"
common="--n-steps 200 --n-latent 16 --n-clusters 10 --log-every 100 --cluster-init-step 100 --seed 3 --n-mc-samples 3 --n-conj-samples 64"
"$BIN/expfam" train --block hierarchical $common --out hier >/dev/null 2>&1
"$BIN/expfam" train --block full $common --block-schedule xyk:100 --block-learning-rates xy:0.5 --out full >/dev/null 2>&1
cat > small.toml <<'T'
title = "bit"
prefix = "B"
repeats = 2
[base.model]
block = "full"
n_latent = 8
n_clusters = 6
[base.train]
n_steps = 100
log_every = 50
cluster_init = "random"
n_mc_samples = 2
n_conj_samples = 32
[base.evaluate]
n_r2_samples = 200
n_iwae_samples = 5
[[phases]]
name = "p"
grid = { learning_rate = [2e-3, 4e-3] }
T
"$BIN/expfam" sweep small.toml --out sweep --no-run-plots --stack 2 >/dev/null 2>&1  # --stack: a CPU sweep no longer stacks by default
"$BIN/python" - <<'P'
import hashlib, json, pathlib, numpy as np, csv
root = pathlib.Path(".")
for run in sorted({p.parent for p in root.rglob("metrics.json")}):
    h = hashlib.sha256()
    for name in ("params.npz", "checkpoint.npz"):
        f = run / name
        if f.exists():
            with np.load(f, allow_pickle=False) as z:
                for k in sorted(z.files):
                    h.update(k.encode()); h.update(np.ascontiguousarray(z[k]).tobytes())
    h.update(json.dumps(json.loads((run / "metrics.json").read_text()), sort_keys=True).encode())
    hist = run / "history.csv"
    if hist.exists():
        rows = list(csv.DictReader(hist.open()))
        for r in rows:
            h.update(json.dumps({k: v for k, v in r.items() if "second" not in k and "time" not in k}, sort_keys=True).encode())
    print(run, h.hexdigest()[:16])
P
