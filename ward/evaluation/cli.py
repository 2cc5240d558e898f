"""`ward eval` and `ward eval-tune`: the detection benchmark and rule tuning from the command line.

Why here: both judge the decision rule on simulated scenarios (:mod:`ward.evaluation.run`,
:mod:`ward.evaluation.tune`); by default under the rule the ward serves (serve_configs/ward.yaml), so
a benchmark judges what serves patients.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

SHIPPED_RULE = Path("serve_configs/ward.yaml")
"""The rule ``ward eval`` and ``ward eval-tune`` use unless ``--rule`` says otherwise: the one the ward serves."""
BUILTIN_RULE = "defaults"
"""``--rule defaults``: the rule's built-in parameters (``RuleConfig()``), not the shipped config's."""


def _resolve_rule_path(path: Path) -> Path:
    """The shipped default is found from the working directory, else from the repository ward runs from."""
    from ward.config import shipped_config

    if path.is_file() or path != SHIPPED_RULE:
        return path
    return shipped_config() or path


def _load_rule(path: Optional[Path]):
    """(RuleConfig, source) from a YAML/JSON file of rule parameters or a ward/Serve config's `rules:`.

    ``None`` is the ward's shipped rule (serve_configs/ward.yaml), so a benchmark judges what serves patients;
    ``Path("defaults")`` the rule's built-in parameters. ``source`` says which, for the output and the JSON.
    """
    import yaml

    from ward.config import RuleConfig

    if path is not None and str(path) == BUILTIN_RULE:
        return RuleConfig(), "built-in defaults (RuleConfig())"
    path = _resolve_rule_path(SHIPPED_RULE if path is None else path)
    if not path.is_file():
        hint = (" (the shipped rule: run from the repository root, or pass --rule FILE / --rule defaults)"
                if path == SHIPPED_RULE else "")
        raise ValueError(f"rule file not found: {path}{hint}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML/JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of rule parameters")
    if isinstance(data.get("applications"), list):  # a Serve config: the ward application's args
        apps = [a.get("args") for a in data["applications"] if isinstance(a, dict) and isinstance(a.get("args"), dict)]
        if not apps:
            raise ValueError(f"{path}: a Serve config without an application whose args are a ward config")
        data = apps[0]
    source = str(path)
    if "beds" in data or "rules" in data:  # a ward config: use its ward-wide rule
        data = data.get("rules") or {}
        source += " (ward-wide `rules:`)"
    try:
        return RuleConfig.model_validate(data), source
    except ValueError as exc:
        raise ValueError(f"{path}: invalid decision rule: {exc}") from None


def register(app: typer.Typer) -> None:
    @app.command("eval-tune")
    def eval_tune(streams: Path = typer.Argument(..., help="npz from `ward eval --seed S --streams PATH` "
                                                            "(validation seeds, never the evaluation seed)"),
                  rule: Optional[Path] = typer.Option(None, "--rule", help="starting rule (as for ward eval; default: the "
                                                                                "shipped serve_configs/ward.yaml)"),
                  out: Optional[Path] = typer.Option(None, "--out", help="write the chosen rule here (YAML)"),
                  json_path: Optional[Path] = typer.Option(
                      None, "--json", help="write both stages' constraints, messages and top candidates here"),
                  top: int = typer.Option(10, help="candidates per stage to print and keep in --json"),
                  max_false_alarms: float = typer.Option(
                      1.0, "--max-false-alarms-per-24h", help="alarm-tier constraint: false alarms per 24 h of "
                                                               "non-seizure footage"),
                  max_reviews: float = typer.Option(
                      50.0, "--max-reviews-per-24h", help="review-tier constraint: review events per 24 h outside "
                                                          "seizures"),
                  curve: Optional[str] = typer.Option(
                      None, "--curve", help="comma-separated false-alarm caps per 24 h, e.g. 0,1,2,5,10: also print "
                                            "(and keep in --json) the best alarm rule under each, the price of each "
                                            "false-alarm budget")) -> None:
        """Tune the rule on saved validation streams: alarms (<= N false alarms/24 h at the highest sensitivity,
        then the earliest alarm), then the review tier (<= M review events/24 h, most seizures flagged early)."""
        import json as _json

        import yaml

        from ward.evaluation.run import EVAL_SEED, load_streams
        from ward.evaluation.tune import tune

        try:
            base, _ = _load_rule(rule)
            data = load_streams(streams)
        except (ValueError, FileNotFoundError, OSError) as exc:
            raise typer.BadParameter(str(exc)) from None
        seeds = {m["seed"] for m, _ in data}
        if any(s >= EVAL_SEED for s in seeds):
            raise typer.BadParameter(f"{streams} holds evaluation-seed scenarios ({EVAL_SEED}+): tune on "
                                     "validation seeds (`ward eval --seed 800000 ...`), never on the test seeds")
        try:
            caps = [float(c) for c in curve.split(",") if c.strip()] if curve else []
        except ValueError:
            raise typer.BadParameter(f"--curve {curve!r}: give numbers separated by commas, e.g. 0,1,2,5,10") from None
        try:
            res = tune(data, base, max_false_alarms_per_24h=max_false_alarms, max_reviews_per_24h=max_reviews,
                       top=top, curve=caps)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        _print_tune(res)
        if json_path:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(_json.dumps({"streams": str(streams), **res}, indent=2, default=float))
            typer.echo(f"wrote {json_path}")
        if out:
            header = (f"# chosen by `ward eval-tune` on validation streams {streams}\n"
                      f"# {res['alarm']['message']}\n# {res['review']['message']}\n")
            out.write_text(header + yaml.safe_dump(res["rule"], sort_keys=False))
            typer.echo(f"wrote {out}")

    @app.command("eval")
    def eval_(fast: bool = typer.Option(False, "--fast", help="ground-truth keypoints + pose noise (no pose network)"),
              seed: Optional[int] = typer.Option(None, help="evaluation seed (default: the fixed held-out seed)"),
              hours: float = typer.Option(24.0, help="hours of seizure-free footage with confounders"),
              n_seizures: int = typer.Option(4, "--seizures-per-type", help="seizures per type"),
              json_path: Optional[Path] = typer.Option(None, "--json"), png: Optional[Path] = typer.Option(None, "--png"),
              vsvig: Path = typer.Option(Path("models/ward-vsvig-light.pt"), "--vsvig"),
              pose: Path = typer.Option(Path("models/ward-pose-small.pt"), "--pose"),
              batch: int = typer.Option(64, help="clips per VSViG batch"),
              rule: Optional[Path] = typer.Option(
                  None, "--rule", help="YAML/JSON with decision-rule parameters, or a ward/Serve config (its `rules:`); "
                                       "default: the ward's shipped rule, serve_configs/ward.yaml; "
                                       "`--rule defaults`: the rule's built-in parameters"),
              streams: Optional[Path] = typer.Option(
                  None, "--streams", help="also save the scored streams (npz) for `ward eval-tune`"),
              replay: Optional[list[Path]] = typer.Option(
                  None, "--replay", help="summarise streams saved earlier with --streams (a file) or --cache "
                                         "(a folder) under --rule (no rendering, no model; repeat to merge shards)"),
              shard: str = typer.Option("0/1", "--shard", help="K/N: score every N-th scenario from K (run N "
                                                               "processes in parallel, then --replay their streams)"),
              backend: Optional[str] = typer.Option(
                  None, "--backend", help="auto | torch | openvino (default: models.<model>.backend of "
                                          "serve_configs/ward.yaml, else auto)"),
              precision: Optional[str] = typer.Option(
                  None, "--precision", help="auto | fp32 | bf16 | int8 (default: as --backend)"),
              jobs: int = typer.Option(1, "--jobs", help="scoring processes in parallel (each with --threads, default "
                                                          "cores // jobs); same result as one process"),
              cache: Optional[Path] = typer.Option(
                  None, "--cache", help="folder: save each scenario's scored streams as soon as it is done and skip "
                                        "those already there (resume an interrupted run; --replay DIR reads it)"),
              threads: Optional[int] = typer.Option(None, help="threads per scoring process")) -> None:
        """Seizure-detection benchmark on held-out simulated scenarios: VSViG + rule vs the motion baseline."""
        from ward.config import engine_defaults
        from ward.evaluation.run import EvalConfig, print_table, run_eval

        try:
            rule_cfg, rule_source = _load_rule(rule)
            try:
                k, n = (int(x) for x in shard.split("/"))
            except ValueError:
                raise ValueError(f"--shard must look like K/N (e.g. 0/2), got {shard!r}") from None
            if n > 1 and not (streams or cache):
                raise ValueError("--shard needs --streams or --cache (the shards are merged with --replay)")
            cfg = EvalConfig(fast=fast, seed=seed, hours=hours, seizures_per_type=n_seizures, vsvig=str(vsvig),
                             pose=str(pose), batch=batch, threads=threads, rule=rule_cfg,
                             rule_source=rule_source, shard=(k, n), jobs=jobs,
                             vsvig_engine=engine_defaults("vsvig", backend, precision),
                             pose_engine=engine_defaults("pose", backend, precision))
            if replay:
                from ward.evaluation.run import replay_eval

                res = replay_eval(replay, cfg, json_path=json_path, png_path=png, log=typer.echo)
            else:
                res = run_eval(cfg, json_path=json_path, png_path=png, log=typer.echo, streams_path=streams,
                               cache_dir=cache)
        except (ValueError, FileNotFoundError) as exc:
            raise typer.BadParameter(str(exc)) from None
        print_table(res)


_SHORT = {"p_floor": "floor", "alarm_threshold": "thr", "release_threshold": "rel", "tau_rise_s": "rise",
          "tau_decay_s": "decay", "min_duration_s": "min", "review_threshold": "thr", "review_release": "rel",
          "review_min_duration_s": "min", "tau_review_s": "tau"}


_TYPE_SHORT = {"focal_clonic": "FC", "hypermotor": "hyper", "myoclonic": "myo", "tonic": "tonic", "tonic_clonic": "TC"}


def _print_tune(res: dict) -> None:
    """Both stages' top candidates as compact tables, and whether each constraint was met."""
    from rich.console import Console
    from rich.table import Table

    def f(v, pct: bool = False) -> str:
        return "-" if v is None else f"{100 * v:.0f}%" if pct else f"{v:.1f}" if isinstance(v, float) else str(v)

    console = Console()
    for stage, cols in (("alarm", (("sens", "sensitivity"), ("min type", "min_type_sensitivity"),
                                   ("FA/24h", "false_alarms_per_24h"), ("lat s", "median_latency_after_eeg_s"),
                                   ("adv s", "median_advance_before_clinical_s"))),
                        ("review", (("early", "n_flagged_early"), ("flagged", "n_flagged"),
                                    ("rev/24h", "review_events_per_24h"),
                                    ("lat s", "median_flag_latency_after_eeg_s")))):
        st = res[stage]
        t = Table(title=f"{stage} tier: {st['n_feasible']}/{st['n_candidates']} candidates meet the constraint")
        for c in ("#", "ok", *(c for c, _ in cols), "rule"):
            t.add_column(c, overflow="fold")
        for i, r in enumerate(st["top"]):
            t.add_row(str(i + 1), "yes" if r["feasible"] else "no",
                      *(f(r[k], k in ("sensitivity", "min_type_sensitivity")) for _, k in cols),
                      " ".join(f"{_SHORT.get(k, k)}={v:g}" for k, v in r["rule"].items()))
        console.print(t)
        console.print(st["message"], style=None if st["feasible"] else "bold red")
    points = res.get("operating_points") or []
    if points:
        t = Table(title="operating points: the best alarm rule under each false-alarm cap (same replays)")
        for c in ("cap FA/24h", "ok", "sens", "FA/24h", "per type", "lat s", "adv s", "rule"):
            t.add_column(c, overflow="fold")
        for r in points:
            t.add_row(f"{r['max_false_alarms_per_24h']:g}", "yes" if r["feasible"] else "no",
                      f(r["sensitivity"], True), f(r["false_alarms_per_24h"]),
                      " ".join(f"{_TYPE_SHORT.get(k, k)} {f(v, True)}" for k, v in sorted(r["per_type_sensitivity"].items())),
                      f(r["median_latency_after_eeg_s"]), f(r["median_advance_before_clinical_s"]),
                      " ".join(f"{_SHORT.get(k, k)}={v:g}" for k, v in r["rule"].items()))
        console.print(t)
