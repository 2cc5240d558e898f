"""Write models/*.md model cards from the checkpoints' metadata and the benchmark JSON.

    .venv/bin/python scripts/model_cards.py EVAL_JSON "EVAL COMMAND" [VAL_JSON "VAL COMMAND"]

Run by scripts/ship_models.sh after the weights are copied into models/. Every figure in a card comes
from a file (checkpoint metadata, eval JSON); the prose only says how they were produced.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

args = sys.argv[1:]
ev = json.loads(Path(args[0]).read_text()) if args and Path(args[0]).is_file() else None
evcmd = args[1] if len(args) > 1 else ""
val = json.loads(Path(args[2]).read_text()) if len(args) > 2 and Path(args[2]).is_file() else None
valcmd = args[3] if len(args) > 3 else ""
sums = dict(reversed(line.split()) for line in Path("models/SHA256SUMS").read_text().splitlines())
NOT_CLINICAL = ("**Trained on simulated patients only (ward.sim). Not for clinical use. "
                "No clinical performance has been measured.**")


def f(x, pct=False):
    return "-" if x is None else (f"{100 * x:.0f} %" if pct else f"{x:.2f}")


def table(res: dict) -> str:
    rows = ["| model | group | n | detected | sensitivity | median latency after EEG (s) | median advance before clinical (s) |",
            "|---|---|---|---|---|---|---|"]
    for name, r in (("VSViG", res), ("motion baseline (equal sensitivity)", res["baseline"])):
        rows.append(f"| {name} | all | {r['n_seizures']} | {r['n_detected']} | {f(r['sensitivity'], True)} | "
                    f"{f(r['median_latency_after_eeg_s'])} | {f(r['median_advance_before_clinical_s'])} |")
        for t, q in r["per_type"].items():
            rows.append(f"| | {t} | {q['n_seizures']} | {q.get('n_detected', '-')} | {f(q['sensitivity'], True)} | "
                        f"{f(q['median_latency_after_eeg_s'])} | {f(q['median_advance_before_clinical_s'])} |")
    b, d = res["baseline"], res["baseline"]["at_default_threshold"]
    return ("\n".join(rows) +
            f"\n\nFalse alarms per 24 h on {res['hours_non_seizure']:.1f} h of non-seizure footage: VSViG "
            f"{f(res['false_alarms_per_24h'])} ({res['false_alarms']} alarms); motion baseline at equal sensitivity "
            f"{f(b['false_alarms_per_24h'])} ({b['false_alarms']}); motion baseline at its default threshold "
            f"{f(d['false_alarms_per_24h'])} at {f(d['sensitivity'], True)} sensitivity. Review events per 24 h: "
            f"VSViG {f(res['review_events_per_24h'])}. Clip RMSE: VSViG {f(res['clip_rmse'])}.\n\n"
            f"Decision rule: `{json.dumps(res['rule'])}`")


def bench(res: dict | None, cmd: str, what: str) -> str:
    if not res:
        return f"{what}: not measured."
    return (f"{what}: `{cmd}` (seed {res['eval_seed']}, {res['path']} path, {res['n_clips']} clips, "
            f"{len(res['scenario_seeds'])} scenarios):\n\n" + table(res))


v = torch.load("models/ward-vsvig-light.pt", map_location="cpu", weights_only=True)
m = v["metadata"]
mt, tc = m["metrics"], m["train_config"]
nparam = sum(t.numel() for t in v["state_dict"].values() if t.dtype.is_floating_point)
lineage = "\n".join(f"    {c.replace('.venv/bin/', '')}" for c in m.get("lineage", [])) or "    (none recorded)"
selection = m.get("selection") or f"the epoch with the lowest validation MSE ({mt['epoch']})"
Path("models/ward-vsvig-light.md").write_text(f"""# ward-vsvig-light

VSViG-light (paper graph mode: max-relative inter/intra-part graph convolutions), {nparam / 1e6:.2f} M stored
parameters, ward checkpoint format `ward.vsvig/1` (`ward.vision.vsvig.load_vsvig`). Partition orders:
`ward.vision.partition_order.generate_partition_orders(0)` (also in `partition_order_ward.pt`; never the
official file). sha256 `{sums['ward-vsvig-light.pt']}`.

{NOT_CLINICAL}

## Data
Simulated scenarios rendered at 640x360, 6 fps, ground-truth keypoints, split by patient by the dataset
builder (seed 0): seeds 1000-1023 (180 s; 1000-1019 with one random seizure, 1020-1023 seizure-free,
`scripts/make_train_data.sh`) and 1024-1083 (150 s, one seizure each, types cycled so each of the five
types has 12, `scripts/make_train_data_more.sh`); 30-frame clips every 2 s. {m['n_train_clips']} train clips,
validation on {m['n_val_clips']} clips of held-out patients. Labels: `ward.sim.labels` (exponential rise from EEG to
clinical onset, 1 during the clinical phase). Data manifest sha256 `{m['data_manifest_sha256']}`.
Validation-rule seeds (800000+) and evaluation seeds (900000+) are disjoint from all training seeds.

## Reproduce
The weights were trained in stages, each fine-tuning the previous one (`--init`), on the 2 shared CPU
cores of a development machine:

{lineage}
    {m['command'].replace('.venv/bin/', '')}

Last stage's config: {json.dumps({k: tc.get(k) for k in ('epochs', 'batch_size', 'lr', 'weight_decay', 'step_size', 'gamma', 'clips_per_epoch', 'pos_fraction', 'max_val_clips', 'augment', 'seed')})}.
Exported: {selection}.

## Metrics (measured)
Validation at the exported epoch: {json.dumps({k: (round(x, 4) if isinstance(x, float) else x) for k, x in mt.items()})}

{bench(val, valcmd, "Validation benchmark (seeds 800000+, used to choose the decision rule)")}

{bench(ev, evcmd, "Held-out detection benchmark (seeds 900000+, run once with the chosen rule)")}

## Limitations
- Trained on simulated patients only; not for clinical use; no clinical performance measured.
- A CPU training budget of about two hours in total; a GPU run of the official 200 epochs on more
  scenarios should do better.
- Patches were extracted at ground-truth keypoints; real pose errors are only approximated by
  augmentation (the benchmark's fast path adds pose noise; the full path uses the shipped pose model).
""")

p = torch.load("models/ward-pose-small.pt", map_location="cpu", weights_only=True)
pm = p["metadata"]
pc = pm["train_config"]
npp = sum(t.numel() for t in p["state_dict"].values() if t.dtype.is_floating_point)
steps = pm["history"][-1]["step"] if pm.get("history") else 0
Path("models/ward-pose-small.md").write_text(f"""# ward-pose-small

Lightweight OpenPose, `small` configuration (half width), {p['num_refinement_stages']} refinement stage(s),
{npp / 1e6:.2f} M stored parameters, format `ward.openpose/1` (`ward.vision.openpose.load_openpose`,
`ward.vision.pose.PoseEstimator.from_checkpoint`). Input height {pm['input_height']}. sha256 `{sums['ward-pose-small.pt']}`.

{NOT_CLINICAL}

## Data
{pc['sim_frames']} frames rendered from simulator scenarios with seeds {pm['train_seeds']} (640x360, patient and
caregivers annotated), targets: Gaussian heatmaps (sigma {pc['sigma']} input px) + background, PAFs on the
decoder's 19 limbs. Held-out frames: seeds {pm['heldout_seeds']}.

## Reproduce
    {pm['command'].replace('.venv/bin/', '')}

## Metrics (measured on {pm['metrics']['eval_frames']} held-out frames through PoseEstimator)
{json.dumps(pm['metrics'])}

PCK@0.1 is the share of visible ground-truth joints found within 10 % of the patient's bounding-box
diagonal; the detection rate is the share of frames where a person was matched to the patient.
Training loss history (every 25 steps): {json.dumps(pm['history'])}

## Limitations
- Trained from scratch for {steps} steps of batch {pc['batch_size']} on 2 shared CPU cores: far less than
  a real pose model gets. Use the official `pose.pth` (`ward models fetch`) for real cameras.
- Trained on simulated patients only; not for clinical use; no clinical performance measured.
""")
print("cards written")
