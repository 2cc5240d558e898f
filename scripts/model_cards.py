"""Write models/*.md model cards from the checkpoints' metadata and an eval JSON (scripts/ship_models.sh runs it)."""
import json, sys, torch
from pathlib import Path
ev = json.loads(Path(sys.argv[1]).read_text()) if len(sys.argv) > 1 and Path(sys.argv[1]).is_file() else None
evcmd = sys.argv[2] if len(sys.argv) > 2 else ""
sums = dict(reversed(l.split()) for l in Path("models/SHA256SUMS").read_text().splitlines())
v = torch.load("models/ward-vsvig-light.pt", map_location="cpu", weights_only=True)
m = v["metadata"]; mt = m["metrics"]; tc = m["train_config"]
nparam = sum(t.numel() for t in v["state_dict"].values() if t.dtype.is_floating_point)
def f(x, pct=False):
    return "-" if x is None else (f"{100*x:.0f} %" if pct else f"{x:.2f}")
evtxt = "not measured"
if ev:
    rows = ["| model | group | n | sensitivity | median latency after EEG (s) | median advance before clinical (s) |",
            "|---|---|---|---|---|---|"]
    for name, r in (("VSViG", ev), ("motion baseline", ev["baseline"])):
        rows.append(f"| {name} | all | {r['n_seizures']} | {f(r['sensitivity'], True)} | {f(r['median_latency_after_eeg_s'])} | {f(r['median_advance_before_clinical_s'])} |")
        for t, q in r["per_type"].items():
            rows.append(f"| | {t} | {q['n_seizures']} | {f(q['sensitivity'], True)} | {f(q['median_latency_after_eeg_s'])} | {f(q['median_advance_before_clinical_s'])} |")
    evtxt = (f"`{evcmd}` (eval seed {ev['eval_seed']}, {ev['path']} path, {ev['n_clips']} clips, "
             f"{ev['hours_non_seizure']:.2f} h of non-seizure time, {ev['seconds']:.0f} s):\n\n" + "\n".join(rows) +
             f"\n\nFalse alarms per 24 h: VSViG {f(ev['false_alarms_per_24h'])} ({ev['false_alarms']} alarms), baseline "
             f"{f(ev['baseline']['false_alarms_per_24h'])} ({ev['baseline']['false_alarms']}); review events per 24 h: VSViG "
             f"{f(ev['review_events_per_24h'])}; clip RMSE: VSViG {f(ev['clip_rmse'])}, baseline {f(ev['baseline']['clip_rmse'])}.")
Path("models/ward-vsvig-light.md").write_text(f"""# ward-vsvig-light

VSViG-light (paper graph mode: max-relative inter/intra-part graph convolutions), {nparam/1e6:.2f} M stored
parameters, ward checkpoint format `ward.vsvig/1` (`ward.vision.vsvig.load_vsvig`). Partition orders:
`ward.vision.partition_order.generate_partition_orders(0)` (also in `partition_order_ward.pt`; never the
official file). sha256 `{sums['ward-vsvig-light.pt']}`.

**Trained on simulated patients only (ward.sim). Not for clinical use. No clinical performance has been measured.**

## Data
24 simulated scenarios, seeds 1000-1023 (180 s each, 640x360, 6 fps; 1000-1019 with one random seizure,
1020-1023 seizure-free), split by patient by the dataset builder (seed 0): {m['n_train_clips']} train clips, 528 val clips
(this run validated on {m['n_val_clips']} of them), 704 test clips. Ground-truth keypoints. Labels: `ward.sim.labels`
(exponential rise from EEG to clinical onset). Manifest sha256 `{m['data_manifest_sha256']}`.
Evaluation seeds (900000+) are disjoint from all training and validation seeds.

## Reproduce
    bash scripts/make_train_data.sh   # ward sim render x24 (seeds 1000-1023) + ward dataset build -> runs/data_train
    {m['command'].replace('.venv/bin/', '')}

Training config: {json.dumps({k: tc[k] for k in ('epochs','batch_size','lr','weight_decay','step_size','gamma','clips_per_epoch','pos_fraction','max_val_clips','augment','seed')})}.
The run was stopped by hand after epoch 16 of 30 (session time budget); `best.pt` is the best-validation
epoch ({mt['epoch']}, {mt['epoch']} x {tc['clips_per_epoch']} clips drawn from the training split). The lr is 10x the official 1e-4
to learn anything in that budget; on the 2 shared CPU cores training ran at ~16-30 clips/s. This is an
under-trained model: expect weak separation (validation mean p: {mt.get('val_mean_p_seizure', float('nan')):.2f} on
seizure clips vs {mt.get('val_mean_p_none', float('nan')):.2f} on the rest).

## Metrics (measured)
Validation at the exported epoch ({mt['epoch']}): {json.dumps({k: (round(x, 4) if isinstance(x, float) else x) for k, x in mt.items()})}

Detection benchmark, {evtxt}

## Limitations
- Trained on simulated patients only; not for clinical use; no clinical performance measured.
- Tiny training budget (see above): expect poor separation; retrain with `ward train vsvig` on more data/epochs.
- Patches were extracted at ground-truth keypoints; real pose errors are only approximated by augmentation.
""")
p = torch.load("models/ward-pose-small.pt", map_location="cpu", weights_only=True)
pm = p["metadata"]; pc = pm["train_config"]
npp = sum(t.numel() for t in p["state_dict"].values() if t.dtype.is_floating_point)
Path("models/ward-pose-small.md").write_text(f"""# ward-pose-small

Lightweight OpenPose, `small` configuration (half width), {p['num_refinement_stages']} refinement stage(s),
{npp/1e6:.2f} M stored parameters, format `ward.openpose/1` (`ward.vision.openpose.load_openpose`,
`ward.vision.pose.PoseEstimator.from_checkpoint`). Input height {pm['input_height']}. sha256 `{sums['ward-pose-small.pt']}`.

**Trained on simulated patients only (ward.sim). Not for clinical use. No clinical performance has been measured.**

## Data
{pc['sim_frames']} frames rendered from simulator scenarios with seeds {pm['train_seeds']} (640x360, patient and
caregivers annotated), targets: Gaussian heatmaps (sigma {pc['sigma']} input px) + background, PAFs on the
decoder's 19 limbs. Held-out frames: seeds {pm['heldout_seeds']}.

## Reproduce
    ward train pose --config small --sim-frames 240 --steps 400 --batch-size 4 --lr 1e-3 --height 256 --out runs/pose_ship --eval-frames 40 --threads 2 --device cpu --max-minutes 40
    # stopped by hand (time budget) after the step-25 checkpoint, then measured and exported with:
    {pm['command'].replace('.venv/bin/', '')}

## Metrics (measured on {pm['metrics']['eval_frames']} held-out frames through PoseEstimator)
{json.dumps(pm['metrics'])}
Training loss history: {json.dumps(pm['history'])}

## Limitations
- Trained from scratch for only {pm['history'][-1]['step'] if pm['history'] else 0} steps of batch {pc['batch_size']} on a heavily
  shared 2-core CPU (~20-40 s per step): it is a placeholder that exercises the full path, not a usable
  pose estimator. Use the official `pose.pth` (`ward models fetch`) or retrain with more steps.
- Trained on simulated patients only; not for clinical use; no clinical performance measured.
""")
print("cards written")
