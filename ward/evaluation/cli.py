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
                  out: Optional[Path] = typer.Option(None, "--out", help="write the best rule here (YAML)"),
                  top: int = typer.Option(10, help="rows to print"),
                  min_sensitivity: float = typer.Option(
                      0.8, "--min-sensitivity", help="rules below this sensitivity rank last")) -> None:
        """Rank decision-rule parameters on saved validation streams (false alarms, sensitivity, latency)."""
        import json as _json

        import yaml

        from ward.evaluation.run import EVAL_SEED, load_streams
        from ward.evaluation.tune import tune_rule

        try:
            base, _ = _load_rule(rule)
            data = load_streams(streams)
        except (ValueError, FileNotFoundError, OSError) as exc:
            raise typer.BadParameter(str(exc)) from None
        seeds = {m["seed"] for m, _ in data}
        if any(EVAL_SEED <= s < EVAL_SEED + 100_000 for s in seeds):
            raise typer.BadParameter(f"{streams} holds evaluation-seed scenarios ({EVAL_SEED}+): tune on "
                                     "validation seeds (`ward eval --seed 800000 ...`), never on the test seeds")
        rows = tune_rule(data, base, min_sensitivity=min_sensitivity)
        for r in rows[:top]:
            typer.echo(_json.dumps(r))
        if out:
            best = {**base.model_dump(), **rows[0]["rule"]}
            out.write_text("# chosen by `ward eval-tune` on validation streams " + str(streams) + "\n"
                           + yaml.safe_dump(best, sort_keys=False))
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
