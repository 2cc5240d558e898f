"""Bad input everywhere: each gets a clear error (a ValueError subclass naming the problem and the fix).

Config files (as an operator would write them), model checkpoints, annotation tables and the store's
own inputs. Malformed API requests are tested against the running ward in test_faults.py (the
FastAPI app only exists inside a Serve replica).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from support.serve import make_weights
from ward.config import ConfigError, load_ward_config

# ----------------------------------------------------------------------------------------- config


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> tuple[Path, Path]:
    return make_weights(tmp_path_factory.mktemp("models"))


def _yaml(tmp_path: Path, weights: tuple[Path, Path], body: str, name: str = "ward.yaml") -> Path:
    pose, vsvig = weights
    head = textwrap.dedent(f"""\
        models:
          pose: {{path: {pose}, config: small}}
          vsvig: {{path: {vsvig}, variant: light}}
        """)
    p = tmp_path / name
    p.write_text(head + textwrap.dedent(body), encoding="utf-8")
    return p


def test_valid_yaml_loads(tmp_path, weights):
    cfg = load_ward_config(_yaml(tmp_path, weights, """\
        beds:
          - {bed_id: bed-1, source: "sim://?seed=1", fps: 6}
        """))
    assert cfg.beds[0].fps == 6.0


@pytest.mark.parametrize("body,expected", [
    # malformed YAML: the line is named
    ("beds:\n  - {bed_id: bed-1, source: x\n", "malformed YAML"),
    ("beds: [\n", "malformed YAML"),
    # misspelt keys: named with a suggestion
    ("beds:\n  - {bed_id: b1, source: 'sim://?seed=1', fsp: 6}\n", "beds[0].fsp: unknown key; did you mean 'fps'?"),
    ("bed:\n  - {bed_id: b1, source: 'sim://?seed=1'}\n", "did you mean 'beds'?"),
    ("beds:\n  - {bed_id: b1, source: 'sim://?seed=1'}\ndatabase: {ulr: 'sqlite://'}\n", "database.ulr: unknown key"),
    # wrong types
    ("beds:\n  - {bed_id: b1, source: 'sim://?seed=1', fps: six}\n", "beds[0].fps: must be a number"),
    ("beds:\n  - {bed_id: b1, source: 'sim://?seed=1', loop: 'maybe'}\n", "beds[0].loop: must be true or false"),
    ("beds: {bed_id: b1}\n", "beds: must be a list"),
    ("beds:\n  - {bed_id: b1, source: 'sim://?seed=1'}\napi: {port: '8000'}\n", "api.port: must be an integer"),
    # impossible values
    ("beds:\n  - {bed_id: b1, source: 'sim://?seed=1', fps: 0}\n", "beds[0].fps: must be > 0 (got 0)"),
    ("beds:\n  - {bed_id: b1, source: 'sim://?seed=1', fps: -3}\n", "beds[0].fps: must be > 0"),
    ("beds:\n  - {bed_id: b1, source: 'sim://?seed=1'}\nrules: {alarm_threshold: -0.2}\n",
     "rules.alarm_threshold: must be > 0"),
    ("beds:\n  - {bed_id: b1, source: 'sim://?seed=1', rules: {release_threshold: -1}}\n",
     "beds[0].rules.release_threshold: must be > 0"),
    ("beds:\n  - {bed_id: b1, source: 'sim://?seed=1', bed_roi: [0.5, 0, 0.2, 1]}\n",
     "beds[0].bed_roi: must be normalised x0, y0, x1, y1"),
    ("beds:\n  - {bed_id: 'bed 1', source: 'sim://?seed=1'}\n", "beds[0].bed_id: must match"),
    ("beds:\n  - {bed_id: b1, source: 'sim://?seed=1'}\n  - {bed_id: b1, source: 'sim://?seed=2'}\n",
     "duplicate bed id 'b1'"),
    ("beds: []\n", "beds: must not be empty"),
    ("beds:\n  - {bed_id: b1, source: 'sim://?seed=1'}\ndatabase: {url: 'mysql://x'}\n",
     "database.url: must be an SQLAlchemy URL starting with sqlite:// or postgresql://"),
    ("beds:\n  - {bed_id: b1, source: 'sim://?seed=1'}\nwatchdog: {backoff_initial_s: 5, backoff_max_s: 1}\n",
     "watchdog.backoff_max_s: must be >= backoff_initial_s"),
])
def test_bad_yaml_gives_config_error_naming_the_key(tmp_path, weights, body, expected):
    p = _yaml(tmp_path, weights, body)
    with pytest.raises(ConfigError) as exc:
        load_ward_config(p)
    assert expected in str(exc.value), str(exc.value)


def test_yaml_problems_outside_the_schema(tmp_path, weights):
    with pytest.raises(ConfigError, match="cannot read ward config"):
        load_ward_config(tmp_path / "missing.yaml")
    (tmp_path / "empty.yaml").write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match="empty configuration"):
        load_ward_config(tmp_path / "empty.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_ward_config(tmp_path / "list.yaml")
    (tmp_path / "dup.yaml").write_text("name: a\nname: b\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="duplicate key 'name'"):
        load_ward_config(tmp_path / "dup.yaml")
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_ward_config(tmp_path / "bin.yaml")
    # a YAML tag that would construct Python objects under an unsafe loader
    (tmp_path / "evil.yaml").write_text("name: !!python/object/apply:os.system ['true']\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_ward_config(tmp_path / "evil.yaml")


def test_missing_weights_named_and_build_app_refuses(tmp_path, weights):
    p = _yaml(tmp_path, (tmp_path / "nope-pose.pt", weights[1]), "beds:\n  - {bed_id: b1, source: 'sim://?seed=1'}\n")
    with pytest.raises(ConfigError, match=r"models\.pose\.path: file not found.*nope-pose\.pt.*ward models fetch"):
        load_ward_config(p)
    from ward.serve.app import build_app

    with pytest.raises(ConfigError, match="models.pose.path"):
        build_app({"beds": [{"bed_id": "b1", "source": "sim://?seed=1"}],
                   "models": {"pose": {"path": str(tmp_path / "nope-pose.pt")}, "vsvig": {"path": str(weights[1])}}})
    with pytest.raises(ConfigError, match="args"):
        build_app(None)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- checkpoints

def test_vsvig_checkpoint_with_a_missing_key(tmp_path, weights):
    from ward.vision.vsvig import VSViGLoadError, load_vsvig

    ck = torch.load(weights[1], map_location="cpu", weights_only=True)
    victim = sorted(ck["state_dict"])[5]
    del ck["state_dict"][victim]
    torch.save(ck, tmp_path / "missing-key.pt")
    with pytest.raises(VSViGLoadError, match=rf"missing keys \(1\): {victim}"):
        load_vsvig(tmp_path / "missing-key.pt")


def test_vsvig_checkpoint_with_a_wrong_shape_and_wrong_variant(tmp_path, weights):
    from ward.vision.vsvig import VSViGLoadError, load_vsvig

    ck = torch.load(weights[1], map_location="cpu", weights_only=True)
    key = next(k for k, v in ck["state_dict"].items() if v.ndim >= 2 and tuple(v.shape) != (3, 3))
    ck["state_dict"][key] = torch.zeros(3, 3)
    torch.save(ck, tmp_path / "shape.pt")
    with pytest.raises(VSViGLoadError, match=rf"shape mismatches \(1\): {key}: checkpoint \(3, 3\)"):
        load_vsvig(tmp_path / "shape.pt")
    with pytest.raises(VSViGLoadError, match="VSViG-light but variant='base'"):
        load_vsvig(weights[1], variant="base")


def test_checkpoints_swapped_between_models(weights):
    from ward.vision.openpose import load_openpose
    from ward.vision.vsvig import VSViGLoadError, load_vsvig

    with pytest.raises(VSViGLoadError, match="unknown checkpoint format 'ward.openpose/1'"):
        load_vsvig(weights[0])
    with pytest.raises(ValueError, match="does not fit the Lightweight OpenPose"):
        load_openpose(weights[1])


def test_openpose_checkpoint_with_wrong_shapes(tmp_path, weights):
    from ward.vision.openpose import load_openpose

    ck = torch.load(weights[0], map_location="cpu", weights_only=True)
    key = next(k for k, v in ck["state_dict"].items() if v.ndim == 4)
    ck["state_dict"][key] = torch.zeros(1, 1, 1, 1)
    torch.save(ck, tmp_path / "pose-shape.pt")
    with pytest.raises(ValueError, match=rf"shape mismatch \(1\): {key}: checkpoint \(1, 1, 1, 1\)"):
        load_openpose(tmp_path / "pose-shape.pt")
    with pytest.raises(ValueError, match="saved for config 'small'"):
        load_openpose(weights[0], config="official")


def _truncated(src: Path, dst: Path) -> Path:
    b = src.read_bytes()
    dst.write_bytes(b[: len(b) // 2])
    return dst


def test_openpose_truncated_and_non_checkpoint_files(tmp_path, weights):
    from ward.vision.openpose import load_openpose

    p = _truncated(weights[0], tmp_path / "trunc.pt")
    with pytest.raises(ValueError, match=r"cannot read pose checkpoint .*trunc\.pt"):
        load_openpose(p)
    (tmp_path / "page.pt").write_text("<html>404 not found</html>")
    with pytest.raises(ValueError, match="HTML/JSON page"):
        load_openpose(tmp_path / "page.pt")
    (tmp_path / "lfs.pt").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\n")
    with pytest.raises(ValueError, match="Git LFS pointer"):
        load_openpose(tmp_path / "lfs.pt")
    with pytest.raises(FileNotFoundError, match="ward models fetch"):
        load_openpose(tmp_path / "absent.pt")


def test_vsvig_truncated_file_names_the_file(tmp_path, weights):
    from ward.vision.vsvig import load_vsvig

    p = _truncated(weights[1], tmp_path / "vsvig-trunc.pt")
    with pytest.raises(ValueError, match=r"vsvig-trunc\.pt"):
        load_vsvig(p)


def test_vsvig_non_checkpoint_objects(tmp_path):
    from ward.vision.vsvig import VSViGLoadError, load_vsvig

    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(VSViGLoadError, match="holds a list, not a state_dict"):
        load_vsvig(tmp_path / "list.pt")
    with pytest.raises(VSViGLoadError, match="missing key stem.stem.0.weight"):
        load_vsvig({"something": torch.zeros(1)}, partition_order=[[0]])
    with pytest.raises(FileNotFoundError, match=r"VSViG weights not found: .*absent\.pt"):
        load_vsvig(tmp_path / "absent.pt")


# ------------------------------------------------------------------------------------- annotations

def _csv(tmp_path: Path, text: str, name: str = "ann.csv") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


@pytest.mark.parametrize("text,expected", [
    ("video,eeg_onset,clinical_onset\nv1.mp4,1,2\n", "lacks column(s) ['seizure_end']"),
    ("video,eeg_onset,clinical_onset,seizure_end\n", "has no rows"),
    ("video,eeg_onset,clinical_onset,seizure_end\nv1.mp4,ten,12,20\n", "row 2 (v1.mp4) eeg_onset: cannot read time 'ten'"),
    ("video,eeg_onset,clinical_onset,seizure_end\nv1.mp4,10,,20\n", "row 2 (v1.mp4): give all of"),
    ("video,eeg_onset,clinical_onset,seizure_end\nv1.mp4,1,2,3\nv2.mp4,15,12,20\n", "row 3 (v2.mp4): EEG onset 15.0 s is after"),
    ("video,eeg_onset,clinical_onset,seizure_end\nv1.mp4,1,20,20\n", "clinical onset 20.0 s is not before seizure end"),
    ("video,eeg_onset,clinical_onset,seizure_end\nv1.mp4,-1,2,3\n", "negative EEG onset"),
    ("video,eeg_onset,clinical_onset,seizure_end\n,1,2,3\n", "row 2: empty video name"),
    ("video,eeg_onset,clinical_onset,seizure_end\nv1.mp4,1:2x,2:00,3:00\n", "cannot read time '1:2x'"),
])
def test_annotation_errors_name_row_and_problem(tmp_path, text, expected):
    from ward.dataset.annotations import load_annotations

    with pytest.raises(ValueError) as exc:
        load_annotations(_csv(tmp_path, text))
    assert expected in str(exc.value), str(exc.value)


def test_annotation_unknown_video_and_wrong_format(tmp_path):
    from ward.dataset.annotations import load_annotations

    p = _csv(tmp_path, "video,eeg_onset,clinical_onset,seizure_end\nv9.mp4,1,2,3\n")
    with pytest.raises(ValueError, match="video 'v9.mp4' is not in the video folder"):
        load_annotations(p, videos=["v1.mp4"])
    assert load_annotations(p, videos=["v9.mp4"])[0].clinical_onset == 2.0
    with pytest.raises(ValueError, match="must be .csv or .xlsx"):
        load_annotations(_csv(tmp_path, "video\n", name="ann.txt"))
    with pytest.raises(ValueError, match="not found"):
        load_annotations(tmp_path / "none.csv")


# ------------------------------------------------------------------------------------------- store

def test_store_rejects_sql_looking_and_bad_values_without_side_effects(tmp_path):
    """Parameters are bound, never pasted into SQL: a hostile name is just an unknown name."""
    from ward.store import Store
    from ward.store.records import StoreError

    store = Store(f"sqlite:///{tmp_path / 'w.db'}")
    store.create_user("nurse1", "nurse-pass", role="clinician")
    evil = "x' OR '1'='1'; DROP TABLE users; --"
    assert store.authenticate(evil, "anything") is None
    assert store.authenticate("nurse1", evil) is None
    assert store.authenticate_token(evil) is None
    with pytest.raises(ValueError, match="unknown bed"):
        store.history(evil, __import__("datetime").datetime(2024, 1, 1, tzinfo=__import__("datetime").timezone.utc))
    with pytest.raises(StoreError, match="bad username"):
        store.create_user("two words", "long-enough")
    with pytest.raises(StoreError, match="password too short"):
        store.create_user("shorty", "1234")
    with pytest.raises(ValueError, match="role"):
        store.create_user("r", "long-enough", role="superuser")
    assert [u.username for u in store.list_users()] == ["nurse1"]  # the users table survived
    assert store.authenticate("nurse1", "nurse-pass") is not None
    store.close()


# ------------------------------------------------------------------------------------ API requests

@pytest.fixture()
def api(tmp_path, monkeypatch):
    from support.api import api_client

    yield from api_client(tmp_path, monkeypatch)


V = ("viewer1", "viewer-pass")
N = ("nurse1", "nurse-pass")


def _alarm(store) -> int:
    from datetime import datetime, timezone

    store.upsert_bed("bed-1")
    return store.open_alarm("bed-1", "alarm", datetime.now(timezone.utc), peak=0.9)


def test_api_unauthenticated_401_viewer_ack_403(api):
    client, _inst, store = api
    aid = _alarm(store)
    for path in ("/api/beds", "/api/alarms", "/api/beds/bed-1/probabilities", "/metrics"):
        r = client.get(path)
        assert r.status_code == 401 and "Bearer" in r.headers["www-authenticate"], path
    assert client.get("/api/health").status_code == 200
    assert client.get("/api/beds", headers={"Authorization": "Bearer wt_not-a-token"}).status_code == 401
    assert client.get("/api/beds", headers={"Authorization": "Basic !!!notbase64"}).status_code == 401
    assert client.get("/api/beds", headers={"Authorization": "Digest x"}).status_code == 401
    assert client.get("/api/beds", auth=V).status_code == 200  # the viewer is authenticated: the 403 is the role
    r = client.post(f"/api/alarms/{aid}/ack", json={"verdict": "true"}, auth=V)
    assert r.status_code == 403 and "clinician" in r.json()["detail"], (r.status_code, r.text)
    assert store.ack_events(aid) == []
    assert store.get_alarm(aid).acknowledged is False and store.get_alarm(aid).verdict is None
    r = client.post(f"/api/alarms/{aid}/ack", json={"verdict": "true"}, auth=N)
    assert r.status_code == 200 and r.json()["acknowledged"] is True
    assert store.get_alarm(aid).verdict == "true" and [e.username for e in store.ack_events(aid)] == ["nurse1"]


@pytest.mark.parametrize("method,path,kwargs", [
    ("get", "/api/alarms", {"params": {"limit": "abc"}}),
    ("get", "/api/alarms", {"params": {"limit": 0}}),
    ("get", "/api/alarms", {"params": {"limit": 10**9}}),
    ("get", "/api/alarms", {"params": {"since": "yesterday"}}),
    ("get", "/api/alarms", {"params": {"tier": "catastrophic"}}),
    ("get", "/api/beds/bed-1/probabilities", {"params": {"resolution": "5s"}}),
    ("get", "/api/beds/bed-1/probabilities", {"params": {"since": "2024-13-45T00:00:00"}}),
    ("get", "/api/beds/bed-1/probabilities",
     {"params": {"since": "2024-01-02T00:00:00Z", "until": "2024-01-01T00:00:00Z"}}),
    ("post", "/api/alarms/abc/ack", {"json": {"verdict": "true"}}),
    ("post", "/api/alarms/1/ack", {"json": {"verdict": "maybe"}}),
    ("post", "/api/alarms/1/ack", {"json": {"verdict": True}}),
    ("post", "/api/alarms/1/ack", {"json": {"verdict": "true", "extra": 1}}),
    ("post", "/api/alarms/1/ack", {"json": {"verdict": "true", "note": "x" * 2001}}),
    ("post", "/api/alarms/1/ack", {"json": ["verdict", "true"]}),
    ("post", "/api/alarms/1/ack", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
    ("post", "/api/alarms/1/ack", {}),
])
def test_api_wrong_types_are_422(api, method, path, kwargs):
    client, _inst, store = api
    assert _alarm(store) == 1  # the alarm the ack paths name exists: 422 is about the request, not the id
    r = getattr(client, method)(path, auth=N, **kwargs)
    assert r.status_code == 422, (r.status_code, r.text)
    assert r.json()["detail"]  # names the problem
    assert store.ack_events(1) == []
    assert store.get_alarm(1).verdict is None and store.get_alarm(1).acknowledged is False


def test_api_huge_bodies_are_413_before_parsing(api):
    client, _inst, store = api
    aid = _alarm(store)
    big = b'{"verdict": "true", "note": "' + b"x" * (70 * 1024) + b'"}'
    r = client.post(f"/api/alarms/{aid}/ack", content=big, auth=N, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "65536" in r.json()["detail"]
    r = client.post(f"/api/alarms/{aid}/ack", auth=N, headers={"content-type": "application/json",
                                                                "content-length": "999999999"}, content=b"{}")
    assert r.request.headers["content-length"] == "999999999"  # the client sent the lie (else this proves nothing)
    assert r.status_code == 413  # judged by the declared length, before reading

    def chunks():
        yield b'{"verdict": '
        yield b'"true"}'

    r = client.post(f"/api/alarms/{aid}/ack", content=chunks(), auth=N, headers={"content-type": "application/json"})
    assert r.status_code == 411
    assert store.ack_events(aid) == []


def test_api_unknown_ids_are_404(api):
    client, _inst, _store = api
    r = client.get("/api/beds/bed-99/probabilities", auth=V)
    assert r.status_code == 404 and "bed-99" in r.json()["detail"] and "bed-1" in r.json()["detail"]
    assert client.get("/api/alarms", params={"bed_id": "nope"}, auth=V).status_code == 404
    assert client.get("/api/beds/nope/poses", auth=V).status_code == 404
    r = client.post("/api/alarms/424242/ack", json={"verdict": "true"}, auth=N)
    assert r.status_code == 404 and "424242" in r.json()["detail"]


@pytest.mark.parametrize("evil", ["x' OR '1'='1", "1; DROP TABLE alarms; --", "bed-1' --", "%' UNION SELECT * FROM users --"])
def test_api_sql_looking_strings_change_nothing(api, evil):
    client, _inst, store = api
    aid = _alarm(store)
    n_users = len(store.list_users())
    r = client.get(f"/api/beds/{evil}/probabilities", auth=V)
    assert r.status_code == 404
    assert client.get("/api/alarms", params={"bed_id": evil}, auth=V).status_code == 404
    assert client.get("/api/alarms", params={"since": evil}, auth=V).status_code == 422
    r = client.get("/api/beds", auth=(evil, evil))
    assert r.status_code == 401
    r = client.post(f"/api/alarms/{aid}/ack", json={"verdict": "unsure", "note": evil}, auth=N)
    assert r.status_code == 200
    assert store.ack_events(aid)[0].note == evil  # stored literally, as data
    assert len(store.list_users()) == n_users
    assert [a.id for a in store.list_alarms()] == [aid]


def test_api_login_rate_limit_429_and_audit(api):
    client, _inst, store = api
    for _ in range(5):
        assert client.get("/api/beds", auth=("nurse1", "guess-guess")).status_code == 401
    r = client.get("/api/beds", auth=N)  # the right password no longer helps
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0 and "too many failed logins" in r.json()["detail"]
    assert client.get("/api/beds", auth=V).status_code == 200  # other users are not affected
    rows = store.audit_log(limit=50)
    failed = [a for a in rows if a.action == "login.failed"]
    assert len(failed) == 5 and all(a.username == "nurse1" and a.source == "api" for a in failed)
    assert any(a.action == "login" and a.username == "viewer1" for a in rows)
    assert not any("guess-guess" in str(a.detail) or "nurse-pass" in str(a.detail) for a in rows)
    # a cached credential is audited once, not per request
    for _ in range(3):
        client.get("/api/beds", auth=V)
    assert sum(a.action == "login" and a.username == "viewer1" for a in store.audit_log(limit=50)) == 1
