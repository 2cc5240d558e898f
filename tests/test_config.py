"""The ward configuration is validated strictly, with one error naming every bad key."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ward.config import ConfigError, RuleConfig, WardConfig, load_ward_config, validate_rule_overrides


@pytest.fixture()
def weights(tmp_path: Path) -> dict[str, Path]:
    pose = tmp_path / "pose.pth"
    vsvig = tmp_path / "vsvig.pth"
    pose.write_bytes(b"pose")
    vsvig.write_bytes(b"vsvig")
    return {"pose": pose, "vsvig": vsvig}


@pytest.fixture()
def cfg(weights: dict[str, Path]) -> dict[str, Any]:
    return {
        "name": "ward-a",
        "beds": [
            {"bed_id": "bed1", "source": "sim://?seed=1"},
            {"bed_id": "bed2", "source": "rtsp://127.0.0.1:8554/bed2", "fps": 5},
            {"bed_id": "bed3", "source": "/videos/bed3.mp4", "bed_roi": [0.1, 0.2, 0.9, 1.0]},
        ],
        "models": {"pose": {"path": str(weights["pose"])}, "vsvig": {"path": str(weights["vsvig"])}},
    }


def problems(data: Any, **kw: Any) -> list[str]:
    with pytest.raises(ConfigError) as ei:
        load_ward_config(data, **kw)
    assert str(ei.value).count("\n") == len(ei.value.problems)  # header + one line per problem
    return ei.value.problems


def test_valid_config_gets_documented_defaults(cfg: dict[str, Any]) -> None:
    c = load_ward_config(cfg)
    assert [b.bed_id for b in c.beds] == ["bed1", "bed2", "bed3"]
    b1 = c.bed("bed1")
    assert (b1.fps, b1.height, b1.bed_roi, b1.loop, b1.rules.values()) == (6.0, 360, (0.0, 0.0, 1.0, 1.0), True, {})
    assert c.bed("bed3").bed_roi == (0.1, 0.2, 0.9, 1.0)
    assert c.database.url == "sqlite:///./ward.db"
    assert (c.api.host, c.api.port) == ("127.0.0.1", 8000)
    assert (c.dashboard.enabled, c.dashboard.port) == (True, 8501)
    assert (c.clip.length, c.clip.stride_s) == (30, 1.0)
    assert (c.watchdog.no_frame_timeout_s, c.watchdog.backoff_initial_s, c.watchdog.backoff_max_s,
            c.watchdog.jitter) == (10.0, 0.5, 30.0, 0.2)
    assert c.resolved_bed("bed1").stride_frames == 6 and c.resolved_bed("bed2").stride_frames == 5
    assert c.resolved_bed("bed2").watchdog == c.watchdog
    assert c.resolved_bed("bed1").rule.config == RuleConfig() and c.resolved_bed("bed1").rule.source == "default"
    # survives the trip to a Ray actor
    assert pickle.loads(pickle.dumps(c)) == c


def test_relative_weight_paths_become_absolute(cfg: dict[str, Any], weights: dict[str, Path]) -> None:
    cfg["models"]["pose"]["path"] = weights["pose"].name
    cfg["models"]["vsvig"]["path"] = weights["vsvig"].name
    c = load_ward_config(cfg, base_dir=weights["pose"].parent)
    assert c.models.pose.path == str(weights["pose"].resolve())
    assert Path(c.models.vsvig.path).is_absolute()


@pytest.mark.parametrize("where, key, expected", [
    ((), "bedz", "bedz: unknown key"),
    (("batching", "pose"), "max_batch", "batching.pose.max_batch: unknown key; did you mean 'max_batch_size'?"),
    (("beds", 1), "fsp", "beds[1].fsp: unknown key; did you mean 'fps'?"),
    (("resources", "camera_actors"), "gpus", "resources.camera_actors.gpus: unknown key"),
    (("beds", 0, "watchdog"), "timeout", "beds[0].watchdog.timeout: unknown key"),
])
def test_unknown_key_anywhere_is_rejected_by_dotted_name(cfg: dict[str, Any], where: tuple, key: str,
                                                        expected: str) -> None:
    node: Any = cfg
    for part in where:
        if isinstance(node, dict) and part not in node:
            node[part] = {}
        node = node[part]
    node[key] = 1
    (msg,) = problems(cfg)
    assert msg.startswith(expected)
    assert "allowed:" in msg


@pytest.mark.parametrize("path, value, expected", [
    (("beds", 2, "fps"), 0, "beds[2].fps: must be > 0 (got 0)"),
    (("beds", 0, "fps"), "six", "beds[0].fps: must be a number (got 'six')"),
    (("api", "port"), "8000", "api.port: must be an integer (got '8000')"),
    (("api", "port"), 70000, "api.port: must be <= 65535 (got 70000)"),
    (("dashboard", "enabled"), "yes", "dashboard.enabled: must be true or false (got 'yes')"),
    (("beds", 0, "bed_id"), 7, "beds[0].bed_id: must be a string (got 7)"),
    (("watchdog", "no_frame_timeout_s"), -1, "watchdog.no_frame_timeout_s: must be > 0 (got -1)"),
    (("watchdog", "jitter"), 1.5, "watchdog.jitter: must be <= 1 (got 1.5)"),
    (("batching", "vsvig", "batch_wait_timeout_s"), -0.01, "batching.vsvig.batch_wait_timeout_s: must be >= 0"),
    (("beds", 1, "offline_alarm_after_s"), -5, "beds[1].offline_alarm_after_s: must be > 0 (got -5)"),
    (("clip", "length"), 31, "clip.length: must be one of 30 (got 31)"),
    (("models", "pose", "config"), "large", "models.pose.config: must be one of 'official' or 'small'"),
    (("beds", 1, "source"), "ftp://cam/1", "beds[1].source: unsupported camera source scheme 'ftp'"),
    (("beds", 1, "bed_roi"), [0.5, 0.0, 0.4, 1.0], "beds[1].bed_roi: must be normalised"),
    (("beds", 1, "bed_roi"), [0.0, 0.0, 1.0], "beds[1].bed_roi: must be 4 numbers x0, y0, x1, y1 (got 3"),
    (("database", "url"), "mysql://x", "database.url: must be an SQLAlchemy URL"),
])
def test_bad_values_name_the_key_and_value(cfg: dict[str, Any], path: tuple, value: Any, expected: str) -> None:
    node: Any = cfg
    for part in path[:-1]:
        node = node.setdefault(part, {}) if isinstance(node, dict) else node[part]
    node[path[-1]] = value
    msgs = problems(cfg)
    assert any(m.startswith(expected) for m in msgs), msgs


def test_duplicate_bed_ids_are_named(cfg: dict[str, Any]) -> None:
    cfg["beds"][2]["bed_id"] = "bed1"
    assert problems(cfg) == ["beds[2].bed_id: duplicate bed id 'bed1' (also beds[0]); bed ids must be unique"]


def test_duplicate_ids_reported_alongside_other_bed_errors(cfg: dict[str, Any]) -> None:
    cfg["beds"][2]["bed_id"] = "bed1"
    cfg["beds"][1]["fps"] = 0
    msgs = problems(cfg)
    assert "beds[1].fps: must be > 0 (got 0)" in msgs
    assert any(m.startswith("beds[2].bed_id: duplicate bed id 'bed1'") for m in msgs)


def test_missing_or_unreadable_weights(cfg: dict[str, Any], tmp_path: Path) -> None:
    cfg["models"]["vsvig"]["path"] = str(tmp_path / "nope.pth")
    cfg["models"]["vsvig"]["partition_order"] = str(tmp_path)  # a directory, not a file
    msgs = problems(cfg)
    assert any(m.startswith(f"models.vsvig.path: file not found: {tmp_path / 'nope.pth'}") for m in msgs)
    assert any(m.startswith("models.vsvig.partition_order: not a file") for m in msgs)
    # offline checks (e.g. linting a config on another machine) can skip the file checks
    assert load_ward_config(cfg, validate_paths=False).models.vsvig.path == str(tmp_path / "nope.pth")


def test_every_problem_is_listed_at_once(cfg: dict[str, Any]) -> None:
    cfg["beds"][0]["fps"] = 0
    cfg["beds"][1]["colour"] = "red"
    cfg["api"] = {"port": "x"}
    cfg["models"]["pose"]["path"] = "/does/not/exist.pth"
    msgs = problems(cfg)
    assert len(msgs) == 4
    assert {m.split(":")[0] for m in msgs} == {"beds[0].fps", "beds[1].colour", "api.port", "models.pose.path"}


def test_missing_required_sections(weights: dict[str, Path]) -> None:
    msgs = problems({"beds": []})
    assert any(m.startswith("beds: ") for m in msgs)
    assert "models: required key is missing" in msgs


def test_backoff_cap_must_not_be_below_initial(cfg: dict[str, Any]) -> None:
    cfg["watchdog"] = {"backoff_initial_s": 5, "backoff_max_s": 1}
    assert problems(cfg) == ["watchdog.backoff_max_s: must be >= backoff_initial_s (5.0) (got 1.0)"]


def test_per_bed_watchdog_override(cfg: dict[str, Any]) -> None:
    cfg["beds"][1]["watchdog"] = {"no_frame_timeout_s": 30}
    c = load_ward_config(cfg)
    assert c.resolved_bed("bed2").watchdog.no_frame_timeout_s == 30
    assert c.resolved_bed("bed1").watchdog.no_frame_timeout_s == 10


class _Rule(BaseModel):
    """A small real rule model standing in for ward.config.RuleConfig in the pure helper's test."""

    model_config = ConfigDict(extra="forbid")
    threshold: float = Field(0.5, gt=0, lt=1)
    release: float = Field(0.3, gt=0, lt=1)

    @model_validator(mode="after")
    def _order(self) -> "_Rule":
        if self.release >= self.threshold:
            raise ValueError("release must be below threshold")
        return self


def test_validate_rule_overrides_against_a_rule_model() -> None:
    assert validate_rule_overrides({"threshold": 0.6}, _Rule) == []
    assert validate_rule_overrides({"treshold": 0.6}, _Rule)[0][0] == ("treshold",)
    assert "did you mean 'threshold'" in validate_rule_overrides({"treshold": 0.6}, _Rule)[0][1]
    (loc, msg), = validate_rule_overrides({"threshold": 2}, _Rule)
    assert loc == ("threshold",) and msg == "must be < 1 (got 2)"
    # cross-field rule applied to the merged result (the ward-wide base plus the bed's override)
    (loc, msg), = validate_rule_overrides({"release": 0.5}, _Rule, base={"threshold": 0.45})
    assert "release must be below threshold" in msg


def test_rule_overrides_use_the_detection_rule(cfg: dict[str, Any]) -> None:
    cfg["rules"] = {"alarm_threshold": 0.6}
    cfg["beds"][1]["rules"] = {"alarm_threshold": 0.7}
    c = load_ward_config(cfg)
    assert c.resolved_bed("bed2").rule.config.alarm_threshold == 0.7
    assert c.resolved_bed("bed2").rule.sources == {"alarm_threshold": "bed"}
    assert c.resolved_bed("bed1").rule.config.alarm_threshold == 0.6
    assert c.resolved_bed("bed1").rule.source == "ward"
    # typed, and dumped as written (what the Serve args carry), so the dump loads back the same
    assert c.rules.alarm_threshold == 0.6 and c.model_dump()["beds"][1]["rules"] == {"alarm_threshold": 0.7}
    assert load_ward_config(c.model_dump(mode="json")) == c

    bad = copy.deepcopy(cfg)
    bad["beds"][1]["rules"] = {"alarm_treshold": 0.7, }
    (msg,) = problems(bad)
    assert msg.startswith("beds[1].rules.alarm_treshold: unknown key; did you mean 'alarm_threshold'?")
    bad["beds"][1]["rules"] = {"alarm_threshold": -0.1}
    assert problems(bad) == ["beds[1].rules.alarm_threshold: must be > 0 (got -0.1)"]
    bad["beds"][1]["rules"] = {"release_threshold": 0.65}  # in bounds, but not below the ward's 0.6
    (msg,) = problems(bad)
    assert msg.startswith("beds[1].rules: release_threshold (0.65) must be below alarm_threshold (0.6)")
    # merged with the ward's rule, not the library default (0.55): 0.58 < 0.6 is fine
    bad["beds"][1]["rules"] = {"release_threshold": 0.58}
    assert load_ward_config(bad).resolved_bed("bed2").rule.config.release_threshold == 0.58
    bad["rules"] = {"alarm_threshold": 1.5}
    assert problems(bad)[0] == "rules.alarm_threshold: must be < 1 (got 1.5)"


def test_yaml_file_and_serve_config_args(cfg: dict[str, Any], tmp_path: Path) -> None:
    ward_yaml = tmp_path / "ward.yaml"
    ward_yaml.write_text(yaml.safe_dump(cfg))
    assert load_ward_config(ward_yaml).name == "ward-a"
    serve = {"proxy_location": "HeadOnly",
             "applications": [{"name": "ward", "import_path": "ward.serve.app:build_app", "args": cfg}]}
    serve_yaml = tmp_path / "serve.yaml"
    serve_yaml.write_text(yaml.safe_dump(serve))
    assert isinstance(load_ward_config(serve_yaml), WardConfig)
    assert load_ward_config(serve).beds[1].fps == 5.0
    serve["applications"][0]["args"] = "ward.yaml"
    with pytest.raises(ConfigError, match=r"applications\[0\]\.args: must be the ward configuration mapping"):
        load_ward_config(serve)


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("name: ward\nbeds:\n  - bed_id: a\n    source: [unclosed\nmodels: {}\n")
    with pytest.raises(ConfigError, match=r"malformed YAML in .*bad\.yaml at line \d+"):
        load_ward_config(p)
    p.write_text("name: ward\nbeds: []\nname: other\n")
    with pytest.raises(ConfigError, match=r"line 3.*duplicate key 'name' \(first at line 1\)|duplicate key 'name' \(first at line 1\).*line 3"):
        load_ward_config(p)
    p.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_ward_config(p)
    with pytest.raises(ConfigError, match="cannot read ward config"):
        load_ward_config(tmp_path / "missing.yaml")


# ------------------------------------------------------------------ model engines (issue 15)

def test_engine_defaults_are_auto_and_reach_the_deployments(cfg: dict[str, Any]) -> None:
    from ward.serve.app import _model_args

    c = load_ward_config(cfg)
    assert (c.models.pose.backend, c.models.pose.precision) == ("auto", "auto")
    assert (c.models.vsvig.backend, c.models.vsvig.precision) == ("auto", "auto")
    cfg["models"]["pose"].update(backend="openvino", precision="int8")
    cfg["models"]["vsvig"].update(backend="torch", precision="fp32")
    pose, vsvig = _model_args(load_ward_config(cfg))
    assert (pose["backend"], pose["precision"], pose["device"]) == ("openvino", "int8", "cpu")
    assert (vsvig["backend"], vsvig["precision"], vsvig["device"]) == ("torch", "fp32", "cpu")


@pytest.mark.parametrize("model, values, gpus, key, fix", [
    ("pose", {"backend": "torch", "precision": "int8"}, 0, "models.pose.precision",
     "set backend openvino or auto, or use precision fp32/bf16"),
    ("vsvig", {"backend": "torch", "precision": "int8"}, 1, "models.vsvig.precision",
     "set backend openvino or auto, or use precision fp32/bf16"),
    ("pose", {"backend": "openvino"}, 1, "models.pose.backend", "use backend auto or torch"),
    ("vsvig", {"backend": "openvino", "precision": "fp32"}, 0.5, "models.vsvig.backend",
     "resources.vsvig.num_gpus: 0 for a CPU"),
    ("pose", {"precision": "int8"}, 1, "models.pose.precision", "on a GPU use auto, fp32 or bf16"),
    ("vsvig", {"backend": "onnx"}, 0, "models.vsvig.backend", "must be one of 'auto', 'torch' or 'openvino'"),
    ("pose", {"precision": "fp16"}, 0, "models.pose.precision", "must be one of 'auto', 'fp32', 'bf16' or 'int8'"),
    ("pose", {"precison": "fp32"}, 0, "models.pose.precison", "did you mean 'precision'?"),
])
def test_engines_that_can_never_run_are_rejected_before_start(cfg: dict[str, Any], model: str, values: dict,
                                                              gpus: float, key: str, fix: str) -> None:
    cfg["models"][model].update(values)
    cfg["resources"] = {model: {"num_gpus": gpus}}
    msgs = problems(cfg)
    assert len(msgs) == 1 and msgs[0].startswith(key + ":") and fix in msgs[0], msgs


@pytest.mark.parametrize("values, gpus", [({"backend": "openvino", "precision": "int8"}, 0),
                                          ({"backend": "auto", "precision": "bf16"}, 0),  # hardware: at load time
                                          ({"backend": "torch", "precision": "bf16"}, 1),
                                          ({"backend": "auto", "precision": "fp32"}, 1)])
def test_engines_that_can_run_somewhere_are_accepted(cfg: dict[str, Any], values: dict, gpus: float) -> None:
    cfg["models"]["pose"].update(values)
    cfg["models"]["vsvig"].update(values)
    cfg["resources"] = {"pose": {"num_gpus": gpus}, "vsvig": {"num_gpus": gpus}}
    c = load_ward_config(cfg)
    assert (c.models.pose.backend, c.models.pose.precision) == (values["backend"], values["precision"])


def test_offline_tools_take_the_engine_of_a_ward_config(cfg: dict[str, Any], tmp_path: Path) -> None:
    from ward.config import engine_defaults

    cfg["models"]["pose"].update(backend="torch", precision="fp32")
    path = tmp_path / "ward.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert engine_defaults("pose", source=path) == ("torch", "fp32")
    assert engine_defaults("vsvig", source=path) == ("auto", "auto")
    assert engine_defaults("pose", None, "bf16", source=path) == ("torch", "bf16")  # the command line wins
    assert engine_defaults("pose", "openvino", "int8", source=tmp_path / "none.yaml") == ("openvino", "int8")
    assert engine_defaults("pose", source=tmp_path / "none.yaml") == ("auto", "auto")
    shipped = load_ward_config(Path(__file__).resolve().parents[1] / "serve_configs" / "ward.yaml",
                               validate_paths=False)
    assert engine_defaults("pose") == (shipped.models.pose.backend, shipped.models.pose.precision)
