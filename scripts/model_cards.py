"""Write models/*.md model cards, and the training record they quote, from committed files only.

    .venv/bin/python scripts/model_cards.py [EVAL_JSON "EVAL COMMAND" [VAL_JSON "VAL COMMAND" [FULL_JSON "FULL COMMAND"]]]

Without arguments (or with empty ones, as scripts/ship_models.sh passes them) the benchmark figures
come from the committed `ward eval` JSON in docs/results/ (DEFAULT_EVAL, DEFAULT_VAL, DEFAULT_FULL) and the card
names that file and its command. The training figures come from the checkpoints' metadata, which
`ward train` writes; this script exports that metadata to docs/results/model_<name>.json so every
figure in a card sits in a committed JSON. Metadata written by hand after training (the `selection`
note) is labelled as such in the card, because no committed file can reproduce it.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = "docs/results"
# The commands behind the committed eval JSON (a later run passes its own: see main()).
DEFAULT_EVAL = (f"{RESULTS}/eval_24h.json",
                "ward eval --fast --hours 24 --seizures-per-type 4 --jobs 2 --threads 1 --vsvig /work/v3/vsvig_p2/best.pt "
                "--rule /work/v3/rule_p2.yaml --cache /work/v3/testcache_p2 --streams /work/v3/test_p2.npz "
                f"--json {RESULTS}/eval_24h.json --png {RESULTS}/traces_24h.png")
DEFAULT_VAL = (f"{RESULTS}/eval_validation.json",
               "ward eval --fast --seed 800000 --seizures-per-type 8 --hours 24 --jobs 2 --threads 1 --vsvig "
               "/work/v3/vsvig_p2/best.pt --rule serve_configs/ward.yaml --cache /work/v3/valcache_p2 --streams "
               "/work/v3/val_p2.npz, then ward eval --replay /work/v3/val_p2.npz --rule /work/v3/rule_p2.yaml "
               f"--json {RESULTS}/eval_validation.json")
DEFAULT_FULL = (f"{RESULTS}/eval_full_6h.json",
                "ward eval --hours 6 --seizures-per-type 4 --jobs 2 --threads 1 --pose models/ward-pose-small.pt "
                "--vsvig models/ward-vsvig-light.pt --rule serve_configs/ward.yaml --cache /work/v3/fullcache_p2 "
                "--streams /work/v3/test_full_p2.npz --json ... --png ... (copied to "
                f"{RESULTS}/eval_full_6h.json and {RESULTS}/traces_full_6h.png)")
NOT_CLINICAL = ("**Trained on simulated patients only (ward.sim). Not for clinical use. "
                "No clinical performance has been measured.**")
EXPORTED_KEYS = ("trained_on", "created_utc", "command", "lineage", "data", "data_manifest_sha256", "train_config",
                 "n_train_clips", "n_val_clips", "epoch", "metrics", "history", "train_seeds", "heldout_seeds",
                 "input_height", "notes", "selection", "data_info", "precision", "precision_choice",
                 "train_clips_per_s", "train_wall_s", "device", "threads", "averaged_from")
"""Checkpoint metadata copied to docs/results/model_<name>.json (not the partition orders or layouts)."""
SUMS = dict(reversed(line.split()) for line in (ROOT / "models/SHA256SUMS").read_text().splitlines())


def fmt(x: float | None, pct: bool = False) -> str:
    """A figure as the cards print it: '-' for undefined, percentages without decimals."""
    return "-" if x is None else (f"{100 * x:.0f} %" if pct else f"{x:.2f}")


def rel(path: Path) -> str:
    """Path relative to the repository root when inside it (cards name files as the docs do)."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def load_eval(path: str, cmd: str) -> tuple[dict[str, Any] | None, str, str]:
    """(eval JSON or None, its path as cited, the command that wrote it)."""
    p = Path(path) if Path(path).is_absolute() else ROOT / path
    return (json.loads(p.read_text()) if p.is_file() else None), rel(p), cmd


def export_metadata(name: str, ckpt: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Write the checkpoint's training record to docs/results/model_<name>.json; return it and its path."""
    md = ckpt["metadata"]
    out = {"model": f"models/{name}.pt", "source": "checkpoint metadata written by `ward train` "
           "(except `selection` and the `# ...` comments in `command`/`lineage`, added by hand)",
           **{k: md[k] for k in EXPORTED_KEYS if k in md}}
    path = ROOT / RESULTS / f"model_{name}.json"
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    return out, rel(path)


def detection_table(res: dict[str, Any]) -> str:
    """Per-type detection rows for VSViG and the motion baseline, then false alarms and review events."""
    rows = ["| model | group | n | detected | sensitivity | median latency after EEG (s) | median advance before clinical (s) |",
            "|---|---|---|---|---|---|---|"]
    for name, r in (("VSViG", res), ("motion baseline (equal sensitivity)", res["baseline"])):
        rows.append(f"| {name} | all | {r['n_seizures']} | {r['n_detected']} | {fmt(r['sensitivity'], True)} | "
                    f"{fmt(r['median_latency_after_eeg_s'])} | {fmt(r['median_advance_before_clinical_s'])} |")
        for t, q in r["per_type"].items():
            rows.append(f"| | {t} | {q['n_seizures']} | {q.get('n_detected', '-')} | {fmt(q['sensitivity'], True)} | "
                        f"{fmt(q['median_latency_after_eeg_s'])} | {fmt(q['median_advance_before_clinical_s'])} |")
    b, d = res["baseline"], res["baseline"]["at_default_threshold"]
    return ("\n".join(rows) +
            f"\n\nFalse alarms per 24 h on {res['hours_non_seizure']:.1f} h of non-seizure footage: VSViG "
            f"{fmt(res['false_alarms_per_24h'])} ({res['false_alarms']} alarms); motion baseline at equal sensitivity "
            f"{fmt(b['false_alarms_per_24h'])} ({b['false_alarms']}); motion baseline at its default threshold "
            f"{fmt(d['false_alarms_per_24h'])} at {fmt(d['sensitivity'], True)} sensitivity. Review events (the "
            f"non-alarm tier, not false alarms) per 24 h: VSViG {fmt(res['review_events_per_24h'])}. "
            f"Clip RMSE: VSViG {fmt(res['clip_rmse'])}.\n\n"
            f"Decision rule, {res.get('rule_source', 'source not recorded in this JSON')}: `{json.dumps(res['rule'])}`")


def bench_section(ev: tuple[dict[str, Any] | None, str, str], what: str) -> str:
    """A card section for one `ward eval` JSON, naming the file and the command that wrote it."""
    res, path, cmd = ev
    if not res:
        return f"{what}: not measured (no `{path}`)."
    return (f"{what}, from `{path}`, written by `{cmd}` (seed {res['eval_seed']}, {res['path']} path, "
            f"{res['n_clips']} clips, {len(res['scenario_seeds'])} scenarios, VSViG weights `{res['vsvig']}`"
            + (f", pose model `{res['pose']}`" if res.get("pose") else "") + "):\n\n"
            + detection_table(res))


def data_section(m: dict[str, Any], mpath: str) -> str:
    """The card's Data section, from the training record (``data_info``, written by ``ward train``)."""
    info = m.get("data_info") or {}
    common = (f"Labels: `ward.sim.labels` (exponential rise from EEG to clinical onset, 1 during the clinical "
              f"phase). Data manifest sha256 `{m['data_manifest_sha256']}`. Validation-rule seeds (800000+) and "
              "evaluation seeds (900000+) are disjoint from all training seeds.")
    if info.get("format") == "ward.frames/1":
        g, seeds = info.get("generate_config") or {}, info.get("seeds") or {}
        kp = info.get("train_clips_by_keypoints") or {}
        cmd = (f"ward dataset generate --patients {g.get('patients')} --seed-start {g.get('seed_start')} "
               f"--pose {g.get('pose')}")
        return (f"Simulated patients made by the one pipeline (`{cmd}`; deterministic per seed, seeds "
                f"{seeds.get('start')}-{seeds.get('stop')}): {info.get('patients')} patients, one scenario each "
                f"({g.get('seizure_seconds'):g} s with a seizure, {100 * g.get('seizure_share', 0):.0f} % of them, the five "
                f"types balanced; {g.get('free_seconds'):g} s seizure-free with forced confounders otherwise), rendered at "
                f"{g.get('width')}x{g.get('height')}, 6 fps, split by patient "
                f"{'/'.join(str(round(100 * f)) for f in g.get('split_fractions', []))}. 30-frame clips ending every "
                f"second: {m['n_train_clips']} train clips from {info.get('train_patients')} patients, patches cut at the "
                f"keypoints of the shipped pose model (sha256 `{info.get('pose_model_sha256')}`) for "
                f"{kp.get('pose_model', 0)} of them and at ground truth + noise for {kp.get('ground_truth+noise', 0)}; "
                f"validation on {m['n_val_clips']} clips of held-out patients (`{mpath}`). The earlier stages of the "
                "lineage below trained on 84 scenarios with ground-truth keypoints (`scripts/make_train_data.sh`, "
                "`scripts/make_train_data_more.sh`). " + common)
    return ("Simulated scenarios rendered at 640x360, 6 fps, ground-truth keypoints, split by patient by the dataset\n"
            "builder (seed 0): seeds 1000-1023 (180 s; 1000-1019 with one random seizure, 1020-1023 seizure-free,\n"
            "`scripts/make_train_data.sh`) and 1024-1083 (150 s, one seizure each, types cycled so each of the five\n"
            f"types has 12, `scripts/make_train_data_more.sh`); 30-frame clips every 2 s. {m['n_train_clips']} train "
            f"clips,\nvalidation on {m['n_val_clips']} clips of held-out patients (`{mpath}`). " + common)


def keypoint_limit(m: dict[str, Any]) -> str:
    """The card's limitation about where the patches were cut."""
    if (m.get("data_info") or {}).get("format") == "ward.frames/1":
        return ("- Most patches were cut at the shipped pose model's keypoints, which never finds uncovered legs and\n"
                "  loses arms in fast convulsions; the pre-clinical signs (a few degrees of head or hand motion) are\n"
                "  barely separable from calm footage at 6 fps (`val_auc_preclinical` in the metrics).")
    return ("- Patches were extracted at ground-truth keypoints; real pose errors are only approximated by\n"
            "  augmentation (the benchmark's fast path adds pose noise; the full path uses the shipped pose model).")


def vsvig_card(ev: tuple, val: tuple, full: tuple) -> None:
    """models/ward-vsvig-light.md from its checkpoint, its exported metadata and the eval JSON."""
    v = torch.load(ROOT / "models/ward-vsvig-light.pt", map_location="cpu", weights_only=True)
    m, mpath = export_metadata("ward-vsvig-light", v)
    mt, tc = m["metrics"], m.get("train_config") or {}
    nparam = sum(t.numel() for t in v["state_dict"].values() if t.dtype.is_floating_point)
    soup = m.get("averaged_from") or []
    if soup:  # a weight average (`ward train average`): each ingredient's chain, then the average
        lineage = "\n\n".join(
            f"    # ingredient {i + 1} of {len(soup)}, weight {g['weight']:.3g}, sha256 {g['sha256'][:12]}...:\n"
            + "\n".join(f"    {c.replace('.venv/bin/', '')}" for c in [*g.get("lineage", []), g.get("command") or "?"])
            for i, g in enumerate(soup)) + "\n\n    # the average of the ingredients above:"
        config = (f"Weight average of {len(soup)} checkpoints fine-tuned from one starting point "
                  f"(`ward.train.average`; weights {', '.join(format(g['weight'], '.3g') for g in soup)}): no training run "
                  "of its own; each ingredient's command is above, its validation metrics in `averaged_from`.")
        selection = ("the average itself; its metrics below were measured on the average by `ward train average "
                     "--data` (not inherited), and it was chosen over its ingredients on the 24 h validation curve "
                     "(docs/detection.md, Training)")
    else:
        lineage = "\n".join(f"    {c.replace('.venv/bin/', '')}" for c in m.get("lineage", [])) or "    (none recorded)"
        config = "Last stage's config: " + json.dumps({k: tc.get(k) for k in (
            'epochs', 'batch_size', 'lr', 'weight_decay', 'step_size', 'gamma', 'clips_per_epoch', 'pos_fraction',
            'max_val_clips', 'augment', 'seed')}) + "."
        selection = (f"{m['selection']} (a note written by hand into the checkpoint metadata after training; the "
                     "epoch-1 candidate was not kept, so its figures cannot be re-measured; the exported epoch's are "
                     f"re-measured in the validation benchmark below and, for the default rule, in `{RESULTS}/"
                     "eval_validation_default_rule.json`)"
                     if m.get("selection") else f"the epoch with the lowest validation MSE ({mt.get('epoch')})")
    budget = (f"- A small CPU training budget: the last stage's {len(m.get('history') or [])} epochs took "
              f"{sum(h.get('seconds', 0) for h in m.get('history') or []) / 60:.0f} min\n"
              f"  (`history` in `{mpath}`; the earlier stages' durations were not recorded); a GPU run of the official\n"
              "  200 epochs on more scenarios should do better." if not soup else
              "- A small CPU training budget: each ingredient was fine-tuned for 2-5 epochs of 30,000 clips on 2 CPU\n"
              "  cores (20-40 min each); a GPU run of the official 200 epochs on more scenarios should do better.")
    (ROOT / "models/ward-vsvig-light.md").write_text(f"""# ward-vsvig-light

VSViG-light (paper graph mode: max-relative inter/intra-part graph convolutions), {nparam / 1e6:.2f} M stored
parameters, ward checkpoint format `ward.vsvig/1` (`ward.vision.vsvig.load_vsvig`). Partition orders:
`ward.vision.partition_order.generate_partition_orders(0)` (also in `partition_order_ward.pt`; never the
official file). sha256 `{SUMS['ward-vsvig-light.pt']}`.

{NOT_CLINICAL}

Every figure below comes from a committed JSON named beside it. This card is generated by
`.venv/bin/python scripts/model_cards.py`; the training record is the checkpoint's metadata, exported
to `{mpath}`.

## Data
{data_section(m, mpath)}

## Reproduce
The weights were trained in stages, each fine-tuning the previous one (`--init`), on the 2 shared CPU
cores of a development machine. A path in a command names the file as it was when the command ran:
`--init models/ward-vsvig-light.pt` means the weights shipped at that time (their sha256 is in the git
history of `models/SHA256SUMS`), and data folders are made again from the commands in the Data section.

{lineage}
    {m['command'].replace('.venv/bin/', '')}

{config}
Exported: {selection}.

## Metrics (measured)
Validation {'of the average, measured on it' if soup else 'at the exported epoch'} (`{mpath}`, `metrics`): {json.dumps({k: (float(f'{x:.4g}') if isinstance(x, float) else x) for k, x in mt.items()})}

{bench_section(val, "Validation benchmark (seeds 800000+, the seeds the decision rule was chosen on)")}

{bench_section(ev, "Held-out detection benchmark (seeds 900000+, run once with the chosen rule)")}

{bench_section(full, "Held-out full path (seeds 900000+: rendered video, the pose model, these weights and the chosen rule; the path that serves patients)")}

## Limitations
- Trained on simulated patients only; not for clinical use; no clinical performance measured.
{budget}
{keypoint_limit(m)}
""")


def end_to_end(full: tuple) -> str:
    """The pose card's line on the held-out full path, which runs this model in front of VSViG."""
    res, path, _ = full
    if not res:
        return f"End to end (the full path): not measured (no `{path}`)."
    return (f"End to end, in front of VSViG (`{res['vsvig']}`) and the chosen rule, on the held-out full path "
            f"(`{path}`, pose `{res['pose']}`): {fmt(res['sensitivity'], True)} of {res['n_seizures']} seizures "
            f"detected, {fmt(res['false_alarms_per_24h'])} false alarms per 24 h ({res['false_alarms']} in "
            f"{res['hours_non_seizure']:.1f} h); the command is in models/ward-vsvig-light.md.")


def pose_card(full: tuple) -> None:
    """models/ward-pose-small.md from its checkpoint and its exported metadata."""
    p = torch.load(ROOT / "models/ward-pose-small.pt", map_location="cpu", weights_only=True)
    pm, mpath = export_metadata("ward-pose-small", p)
    pc, met = pm["train_config"], pm["metrics"]
    npp = sum(t.numel() for t in p["state_dict"].values() if t.dtype.is_floating_point)
    hist = pm.get("history") or []
    steps = hist[-1]["step"] if hist else 0
    minutes = f", {hist[-1]['seconds'] / 60:.0f} min" if hist and "seconds" in hist[-1] else ""
    lineage = pm.get("lineage") or []
    chain = "".join(f"\n    {c.replace('.venv/bin/', '')}" for c in lineage)
    reproduce = (f"Fine-tuned from weights made by (oldest first):{chain}\n\nthen:\n\n" if lineage else "")
    mix = []
    if pc.get("seizure_share"):
        mix.append(f"{100 * pc['seizure_share']:.0f} % of each scenario's frames drawn inside its seizure")
    if pc.get("uncovered_share"):
        mix.append(f"{100 * pc['uncovered_share']:.0f} % of the scenarios with the legs uncovered")
    mix_text = f" ({'; '.join(mix)})" if mix else ""
    extra = "".join(f"\n- {label}: PCK@0.1 {met[k + '_pck@0.1']:.2f}, mean error {met[k + '_mean_error_px']:.1f} px, "
                    f"patient found in {100 * met[k + '_detection_rate']:.0f} % of {met[k + '_eval_frames']} frames."
                    for k, label in (("seizure", "Inside seizures (EEG onset to end)"),
                                     ("uncovered", "Legs uncovered (blanket folded at the foot end)"))
                    if k + "_pck@0.1" in met)
    origin = "Fine-tuned" if lineage else "Trained from scratch"
    prec = f" in {pm['precision']}" if pm.get("precision") else ""
    (ROOT / "models/ward-pose-small.md").write_text(f"""# ward-pose-small

Lightweight OpenPose, `small` configuration (half width), {p['num_refinement_stages']} refinement stage(s),
{npp / 1e6:.2f} M stored parameters, format `ward.openpose/1` (`ward.vision.openpose.load_openpose`,
`ward.vision.pose.PoseEstimator.from_checkpoint`). Input height {pm['input_height']}. sha256 `{SUMS['ward-pose-small.pt']}`.

{NOT_CLINICAL}

Every figure below comes from the checkpoint's metadata, written by `ward train pose` and exported to
`{mpath}` by `.venv/bin/python scripts/model_cards.py` (which generates this card).

## Data
{pc['sim_frames']} frames rendered from simulator scenarios with seeds {pm['train_seeds']}{mix_text} (640x360, patient and
caregivers annotated), targets: Gaussian heatmaps (sigma {pc['sigma']} input px) + background, PAFs on the
decoder's 19 limbs. Held-out frames: seeds {pm['heldout_seeds']}.

## Reproduce
{reproduce}    {pm['command'].replace('.venv/bin/', '')}

## Metrics (measured on {met['eval_frames']} held-out frames through PoseEstimator; `{mpath}`, `metrics`)
PCK@0.1 {met['pck@0.1']:.2f}, mean error {met['mean_error_px']:.1f} px, patient found in
{100 * met['detection_rate']:.0f} % of frames.{extra}

PCK@0.1 is the share of visible ground-truth joints found within 10 % of the patient's bounding-box
diagonal; the detection rate is the share of frames where a person was matched to the patient.
The training loss every 25 steps is in the same JSON (`history`).

{end_to_end(full)}

## Limitations
- {origin} for {steps} steps of batch {pc['batch_size']}{minutes}{prec} on {pc.get('threads') or 'the'} shared CPU
  core(s): far less than a real pose model gets. Use the official `pose.pth` (`ward models fetch`) for real cameras.
- Trained on simulated patients only; not for clinical use; no clinical performance measured.
""")


def main(argv: list[str]) -> None:
    """Write both cards; positional arguments (possibly empty) override the committed eval JSON."""
    a = [*argv, "", "", "", "", "", ""]
    ev = load_eval(a[0] or DEFAULT_EVAL[0], a[1] or DEFAULT_EVAL[1])
    val = load_eval(a[2] or DEFAULT_VAL[0], a[3] or DEFAULT_VAL[1])
    full = load_eval(a[4] or DEFAULT_FULL[0], a[5] or DEFAULT_FULL[1])
    vsvig_card(ev, val, full)
    pose_card(full)
    print("cards written")


if __name__ == "__main__":
    main(sys.argv[1:])
