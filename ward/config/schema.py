"""The ward's configuration schema: every section, strict, with each bed's values resolved once.

Ray Serve silently ignores unknown keys in its own YAML, so the ward validates its part (the
application's ``args``) itself: every model forbids extra keys and uses strict types, so a typo never
becomes a silent default (the messages are :mod:`ward.config.errors`', the reading is
:mod:`ward.config.loader`'s).

A bed's effective settings (its watchdog, its clip stride in frames, its configured rule: the ward's
``rules:`` merged with the bed's) are worked out once, when the config is validated, into a
:class:`ResolvedBed` (``cfg.resolved_bed(bed_id)``), so no use site merges per-bed values again.

The module is pure (pydantic, no Ray, no OpenCV) so the builder, the camera actors, the CLI and the
tests can all import it cheaply.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Optional
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from ward.config.errors import ConfigError, NestedError
from ward.config.rules import EffectiveRule, RulePatch, effective_rule, validate_rule_overrides
from ward.camera.sources import source_kind
from ward.core.clip import CLIP_FRAMES, CLIP_STRIDE_S, MODEL_FPS, stride_frames
from ward.core.uris import redact_uri

__all__ = [
    "ApiConfig", "BatchConfig", "BatchingConfig", "BedConfig", "CameraActorResources", "ClipConfig",
    "DashboardConfig", "DatabaseConfig", "DeploymentResources", "IngestConfig",
    "ModelsConfig", "PoseModelConfig", "ResolvedBed", "ResourcesConfig", "RetentionConfig", "RetentionPolicy",
    "VSViGModelConfig", "WardConfig", "WatchdogConfig", "is_loopback", "read_secret_file",
]

CLINICAL_RETENTION_FLOOR_DAYS = 6 * 365  # alarms / audit kept shorter only with allow_short_clinical_retention

log = logging.getLogger("ward.config")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True)


# ----------------------------------------------------------------------------------------- sections

class WatchdogConfig(_Strict):
    """Reconnect pacing and the no-frame watchdog (per ward, overridable per bed for slow cameras)."""

    no_frame_timeout_s: float = Field(10.0, gt=0, description="no frame this long -> release and reopen")
    backoff_initial_s: float = Field(0.5, ge=0, description="first retry delay; doubles per failed attempt")
    backoff_max_s: float = Field(30.0, gt=0, description="cap of the retry delay")
    jitter: float = Field(0.2, ge=0, le=1, description="relative +- random spread of each delay")

    @model_validator(mode="after")
    def _order(self) -> "WatchdogConfig":
        if self.backoff_max_s < self.backoff_initial_s:
            raise NestedError([(("backoff_max_s",), f"must be >= backoff_initial_s ({self.backoff_initial_s}) "
                                 f"(got {self.backoff_max_s})")])
        return self


class BedConfig(_Strict):
    """One bed: its camera, how it is sampled, where the bed is in the image, and rule overrides."""

    bed_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                        description="unique, URL-safe (used in API paths)")
    source: str = Field(min_length=1, description="file path, rtsp://, http(s):// (MJPEG), device:N, /dev/videoN, sim://")
    label: Optional[str] = None
    fps: float = Field(MODEL_FPS, gt=0, le=60, description="model sampling rate; 30 frames = one clip")
    height: int = Field(360, ge=64, le=2160, description="working resolution: frames are resized once to this height")
    bed_roi: tuple[float, float, float, float] = Field(
        (0.0, 0.0, 1.0, 1.0), description="normalised x0, y0, x1, y1 of the bed in the image")
    loop: bool = Field(True, description="file sources: loop at the end (else the bed goes offline)")
    rules: RulePatch = Field(default_factory=RulePatch,  # type: ignore[valid-type]
                             description="overrides of the ward's detection rule for this bed")
    offline_alarm_after_s: float = Field(60.0, gt=0, description="technical alarm when offline this long")
    watchdog: Optional[WatchdogConfig] = Field(None, description="per-bed override of the ward's watchdog")
    keypoints: Literal["pose", "simulator"] = Field(
        "pose", description="'pose': the Pose deployment finds the patient; 'simulator' (sim:// sources only): "
                            "the simulator's ground-truth keypoints bypass the pose model (demos, pose-free tests)")

    @field_validator("bed_roi", mode="before")
    @classmethod
    def _roi_list(cls, v: Any) -> Any:
        # YAML has no tuples; accept a list of exactly the same items.
        if isinstance(v, (list, tuple)) and len(v) != 4:
            raise ValueError(f"must be 4 numbers x0, y0, x1, y1 (got {len(v)}: {list(v)})")
        return tuple(v) if isinstance(v, list) else v

    @field_validator("bed_roi")
    @classmethod
    def _roi_order(cls, v: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        x0, y0, x1, y1 = v
        if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):
            raise ValueError(f"must be normalised x0, y0, x1, y1 with 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 (got {list(v)})")
        return v

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        source_kind(v)  # raises ValueError naming the accepted forms
        return v

    @model_validator(mode="after")
    def _simulator_keypoints_need_sim(self) -> "BedConfig":
        if self.keypoints == "simulator" and source_kind(self.source) != "sim":
            raise ValueError(f"keypoints: 'simulator' needs a sim:// source (got {redact_uri(self.source)!r}); "
                             "use keypoints: pose for real cameras")
        return self


def _check_file(value: str | None, info: ValidationInfo,
                hint: str = "fetch official files with `ward models fetch`, or fix the path") -> str | None:
    """With context ``validate_paths``: the file must exist and be readable; made absolute so Ray
    workers started in another directory find it."""
    ctx = info.context or {}
    if value is None or not ctx.get("validate_paths", False):
        return value
    p = Path(value).expanduser()
    if not p.is_absolute():
        p = Path(ctx.get("base_dir") or os.getcwd()) / p
    problem = _unreadable(p)
    if problem:
        raise ValueError(f"{problem}: {p} ({hint})")
    return str(p.resolve())


class _EngineConfig(_Strict):
    """Which runtime and precision run a model (``ward.vision.engines.resolve`` decides ``auto``)."""

    backend: Literal["auto", "torch", "openvino"] = Field(
        "auto", description="auto: OpenVINO on CPUs, torch on CUDA; torch; openvino (CPU only)")
    precision: Literal["auto", "fp32", "bf16", "int8"] = Field(
        "auto", description="auto: fp32 on CPUs, bf16 (else fp16) autocast on GPUs (never int8); "
                            "int8: OpenVINO's NNCF-quantized model (CPU only)")

    def engine_problems(self, device: str) -> list[tuple[tuple[str, ...], str]]:
        """What can never run on ``device`` (a ``cpu`` or ``cuda`` node), by key, with the fix.

        Hardware that only the serving node knows (native bf16, openvino installed) is assumed
        present here and checked when the model loads (:func:`ward.vision.engines.resolve` again)."""
        from ward.vision.engines import EngineError, resolve  # noqa: PLC0415 (numpy only, no torch)

        def fails(precision: str) -> str | None:
            try:
                resolve(self.backend, precision, device,  # type: ignore[arg-type]
                        native_bf16=True, have_openvino=True, cuda_bf16=True)
            except EngineError as exc:
                return str(exc)
            return None

        problem = fails("auto")
        if problem:
            return [(("backend",), problem)]
        problem = fails(self.precision)
        return [(("precision",), problem)] if problem else []

    @model_validator(mode="after")
    def _engine_anywhere(self) -> "_EngineConfig":
        # int8 with torch fails on every device; what depends on the device is checked by WardConfig
        if self.precision == "int8" and self.backend == "torch":
            raise NestedError(self.engine_problems("cpu"))
        return self


class PoseModelConfig(_EngineConfig):
    path: str = Field(min_length=1, description="pose weights (.pth)")
    config: Literal["official", "small"] = "small"
    refinement_stages: int = Field(1, ge=0, le=5)
    input_height: int = Field(256, ge=64, le=1024, multiple_of=8,
                              description="network input height (the demo uses 256; lower is faster, less accurate)")

    _path = field_validator("path")(_check_file)


class VSViGModelConfig(_EngineConfig):
    path: str = Field(min_length=1, description="VSViG weights (.pth)")
    variant: Literal["light", "base"] = "light"
    graph_mode: Literal["official", "paper"] = "paper"
    partition_order: Optional[str] = Field(None, description="dynamic partition order file (.pt/.npy/.json)")

    _paths = field_validator("path", "partition_order")(_check_file)


class ModelsConfig(_Strict):
    pose: PoseModelConfig
    vsvig: VSViGModelConfig


DEFAULT_DATABASE_URL = "sqlite:///./ward.db"
_DB_URL_FORM = re.compile(r"^(sqlite|postgresql)(\+\w+)?://")


class DatabaseConfig(_Strict):
    """Where the ward stores its data, and how it learns the URL: exactly one of

    - ``url``: the URL itself, for SQLite or a PostgreSQL URL WITHOUT a password (peer/cert auth,
      ~/.pgpass); a password there is refused, because the ward config is the Serve application's
      ``args``, which ``serve config`` and Ray's dashboard show and Ray keeps in its state;
    - ``url_env``: the name of an environment variable holding the URL (it must be set for every
      ward process: Ray workers inherit the environment of whoever started Ray on that node);
    - ``url_file``: a file holding the URL, readable by its owner only (mode 0600 or 0400).

    Only the reference is dumped (``model_dump``: what build_app binds to the deployments); each
    process resolves it when it reads :attr:`url`, so the password never enters what Ray stores.
    None given means ``sqlite:///./ward.db``."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True, serialize_by_alias=True)

    literal_url: Optional[str] = Field(None, alias="url", min_length=1,
                                       description="SQLAlchemy URL (SQLite, or PostgreSQL without a password)")
    url_env: Optional[str] = Field(None, min_length=1,
                                   description="environment variable holding the URL, e.g. WARD_DB_URL")
    url_file: Optional[str] = Field(None, min_length=1, description="file holding the URL (mode 0600)")
    spill_dir: str = Field("./ward_spill", min_length=1, description="rows are spilled here while the DB is down")
    flush_interval_s: float = Field(1.0, gt=0, le=60)

    @field_validator("literal_url")
    @classmethod
    def _literal(cls, v: str | None) -> str | None:
        if v is not None:
            _check_db_url(v)
            if _url_has_password(v):
                raise ValueError("contains a password; the ward config is the Serve application's args, which "
                                 "`serve config` and Ray's dashboard show: remove `url` and give the URL by "
                                 "reference, url_env: WARD_DB_URL (an environment variable) or url_file: "
                                 "/etc/ward/db_url (a file only the ward's user can read, chmod 600)")
        return v

    @field_validator("url_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
            raise ValueError(f"must be the NAME of an environment variable (letters, digits, '_'), e.g. WARD_DB_URL, "
                             f"not the URL (got {redact_uri(v)!r})")
        return v

    @field_validator("url_file")
    @classmethod
    def _file(cls, v: str | None, info: ValidationInfo) -> str | None:
        return _check_secret_file(v, info)

    @model_validator(mode="after")
    def _one_source(self, info: ValidationInfo) -> "DatabaseConfig":
        given = [k for k, v in (("url", self.literal_url), ("url_env", self.url_env), ("url_file", self.url_file))
                 if v is not None]
        if len(given) > 1:
            raise NestedError([((given[1],), f"give exactly one of url, url_env, url_file (got {' and '.join(given)})")])
        if not given:
            self.literal_url = DEFAULT_DATABASE_URL
        elif given[0] != "url" and (info.context or {}).get("validate_paths", False):
            try:  # at start (build_app, `ward run --check`, the CLI): a missing secret fails at once
                self._resolve()
            except ValueError as exc:
                raise NestedError([((given[0],), str(exc))]) from None
        return self

    @property
    def url(self) -> str:
        """The database URL, resolved in this process (ConfigError naming the key if it cannot be)."""
        try:
            return self._resolve()
        except ValueError as exc:
            raise ConfigError(f"database.{'url_env' if self.url_env else 'url_file'}: {exc}") from None

    def _resolve(self) -> str:
        if self.url_env:
            value = os.environ.get(self.url_env, "").strip()
            if not value:
                raise ValueError(f"environment variable {self.url_env} is not set (or empty) in this process: set "
                                 "it to the database URL for the ward (on a cluster: on every node, before `ray start`)")
            where = f"${self.url_env}"
        elif self.url_file:
            value, where = read_secret_file(Path(self.url_file)), self.url_file
        else:
            return self.literal_url or DEFAULT_DATABASE_URL
        try:
            _check_db_url(value)
        except ValueError as exc:
            raise ValueError(f"{where} {exc}") from None
        return value


def _check_db_url(v: str) -> None:
    if not _DB_URL_FORM.match(v):
        raise ValueError(f"must be an SQLAlchemy URL starting with sqlite:// or postgresql:// (got {redact_uri(v)!r})")


def _url_has_password(v: str) -> bool:
    """A password in the URL's user info or as a libpq ``password=`` query parameter (SQLite has none)."""
    if v.startswith("sqlite"):
        return False
    parts = urlsplit(v)
    try:
        in_userinfo = parts.password is not None
    except ValueError:  # malformed netloc: treat as suspicious, the caller refuses
        return True
    return in_userinfo or any(k.lower() == "password" for k, _ in parse_qsl(parts.query))


def read_secret_file(path: Path) -> str:
    """The stripped text of a secrets file; ValueError when missing, unreadable, empty, or open to others
    (group/other permission bits: whoever can read it has the secret, whoever can write it swaps it)."""
    problem = _unreadable(path)
    if problem:
        raise ValueError(f"{problem}: {path}")
    _check_private(path)
    text = path.read_text(encoding="utf-8").strip()
    if not text:
        raise ValueError(f"{path} is empty")
    return text


def _check_private(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ValueError(f"{path} is open to other users (mode {mode:04o}) but holds a secret: "
                         f"run `chmod 600 {path}`")


def _check_secret_file(value: str | None, info: ValidationInfo) -> str | None:
    """:func:`_check_file`, and (with ``validate_paths``) the file must be private to its owner."""
    checked = _check_file(value, info, hint="fix the path")
    if checked is not None and (info.context or {}).get("validate_paths", False):
        _check_private(Path(checked))
    return checked


class BatchConfig(_Strict):
    max_batch_size: int = Field(4, ge=1, le=1024)
    batch_wait_timeout_s: float = Field(0.02, ge=0, le=5)


class BatchingConfig(_Strict):
    pose: BatchConfig = Field(default_factory=BatchConfig)
    vsvig: BatchConfig = Field(default_factory=lambda: BatchConfig(max_batch_size=4, batch_wait_timeout_s=0.05))


class DeploymentResources(_Strict):
    num_cpus: float = Field(1.0, ge=0)
    num_gpus: float = Field(0.0, ge=0)
    replicas: int = Field(1, ge=1)
    resources: dict[str, float] = Field(default_factory=dict, description="custom Ray resources per replica")

    @property
    def device(self) -> str:
        """Where the deployment's model runs: ``cuda`` with a GPU share, else ``cpu``."""
        return "cuda" if self.num_gpus > 0 else "cpu"


class CameraActorResources(_Strict):
    num_cpus: float = Field(0.1, ge=0)
    beds_per_actor: int = Field(2, ge=1, description="beds read by one actor (threads), saving a process per bed")
    resources: dict[str, float] = Field(default_factory=dict, description="custom Ray resources per actor")


class ResourcesConfig(_Strict):
    pose: DeploymentResources = Field(default_factory=lambda: DeploymentResources(num_cpus=1.0))
    vsvig: DeploymentResources = Field(default_factory=lambda: DeploymentResources(num_cpus=0.25))
    camera_actors: CameraActorResources = Field(default_factory=CameraActorResources)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only: ``localhost`` or a loopback address."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a name (or 0.0.0.0's kin): it may resolve to anything, treat it as the network
        return False


class _Listener(_Strict):
    """A ward front end served over HTTP(S). Bound anywhere but loopback it is refused without TLS
    (``tls_cert`` + ``tls_key``), unless ``allow_plain_http_on_network`` says a TLS-terminating proxy on
    this host fronts it (then a warning is logged at every load)."""

    what: ClassVar[str] = "this service"
    host: str = Field("127.0.0.1", min_length=1, description="bind address; anything but loopback needs TLS")
    tls_cert: Optional[str] = Field(None, min_length=1, description="TLS certificate (PEM, with its chain)")
    tls_key: Optional[str] = Field(None, min_length=1, description="TLS private key (PEM), mode 0600")
    allow_plain_http_on_network: bool = Field(
        False, description="serve plain HTTP on a non-loopback host (only behind a TLS-terminating proxy)")

    @field_validator("tls_cert")
    @classmethod
    def _cert(cls, v: str | None, info: ValidationInfo) -> str | None:
        return _check_file(v, info, hint="give the PEM certificate file, or fix the path")

    @field_validator("tls_key")
    @classmethod
    def _key(cls, v: str | None, info: ValidationInfo) -> str | None:
        return _check_secret_file(v, info)

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None and self.tls_key is not None

    @property
    def binds(self) -> bool:
        """Whether the bind rule applies (a disabled dashboard binds nothing)."""
        return True

    @model_validator(mode="after")
    def _tls_off_loopback(self) -> "_Listener":
        if (self.tls_cert is None) != (self.tls_key is None):
            missing = "tls_key" if self.tls_key is None else "tls_cert"
            raise NestedError([((missing,), "tls_cert and tls_key go together (the certificate and its private "
                                              f"key): set {missing} too, or neither")])
        if not self.binds or self.tls or is_loopback(self.host):
            return self
        if not self.allow_plain_http_on_network:
            raise NestedError([(("host",), f"{self.host!r} is reachable from the network and {self.what} carries "
                                            "logins and patient data: set tls_cert and tls_key (HTTPS), bind "
                                            "127.0.0.1, or set allow_plain_http_on_network: true if a "
                                            "TLS-terminating reverse proxy on this host fronts it")])
        log.warning("%s serves plain HTTP on %s (allow_plain_http_on_network: true): only safe behind a "
                    "TLS-terminating proxy on this host", self.what, self.host)
        return self

    @property
    def url(self) -> str:
        """``http(s)://host:port`` for clients on this machine's side (the ward's own dashboard)."""
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{getattr(self, 'port')}"


class ApiConfig(_Listener):
    """Where the ward's API is reached; keep it equal to Serve's ``http_options`` (host, port, and
    ``ssl_certfile``/``ssl_keyfile`` = ``tls_cert``/``tls_key``): build_app checks the TLS part."""

    what: ClassVar[str] = "the API"
    port: int = Field(8000, ge=1, le=65535)


class DashboardConfig(_Listener):
    """The Streamlit dashboard the API starts (``enabled``); its TLS files become Streamlit's
    ``server.sslCertFile``/``server.sslKeyFile``."""

    what: ClassVar[str] = "the dashboard"
    enabled: bool = True
    port: int = Field(8501, ge=1, le=65535)

    @property
    def binds(self) -> bool:
        return self.enabled


class ClipConfig(_Strict):
    length: Literal[30] = Field(CLIP_FRAMES, description="fixed: VSViG needs 30 frames")
    stride_s: float = Field(CLIP_STRIDE_S, gt=0, le=30, description="a new clip every stride_s seconds")


class IngestConfig(_Strict):
    max_inflight_per_bed: int = Field(2, ge=1, le=16, description="pose requests outstanding per bed")
    degraded_fps_ratio: float = Field(0.8, gt=0, le=1, description="degraded below this fraction of the model fps")
    patient_lost_after_s: float = Field(10.0, gt=0, description="degraded when no patient is found this long")


Days = Optional[Annotated[int, Field(gt=0)]]


class RetentionPolicy(_Strict):
    """How long each table is kept, in whole days; ``None`` (YAML ``null``) keeps it forever.

    The store's own type (``Store.apply_retention`` takes it) and the base of the ``retention:``
    section, so the fields exist once. Unacknowledged or still-active alarms are never deleted,
    whatever ``alarms_days`` says. Raw samples may not outlive their minute rollups: the 1 m history
    would then have holes where the 1 s history still has data.
    """

    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True, frozen=True)

    raw_samples_days: Days = Field(30, description="1 s probability samples (and each bed's latest sample)")
    rollups_days: Days = Field(730, description="minute rollups (1 m / 1 h history, stats)")
    alarms_days: Days = Field(3650, description="ended AND acknowledged alarms, with their ack events")
    health_days: Days = Field(365, description="camera health events (online / degraded / offline)")
    audit_days: Days = Field(3650, description="audit log (logins, acknowledgements, retention runs)")

    @model_validator(mode="after")
    def _raw_within_rollups(self) -> "RetentionPolicy":
        raw, rollups = self.raw_samples_days, self.rollups_days
        if rollups is not None and (raw is None or raw > rollups):
            raise NestedError([(("raw_samples_days",), f"must be <= rollups_days ({rollups}) "
                                 f"(got {'null, i.e. forever' if raw is None else raw}); "
                                 "raw samples may not be kept longer than their minute rollups")])
        return self

    def policy(self) -> "RetentionPolicy":
        """Just the table lifetimes (what the store needs and the audit row records)."""
        return RetentionPolicy(**{k: getattr(self, k) for k in RetentionPolicy.model_fields})


class RetentionConfig(RetentionPolicy):
    """The ``retention:`` section: the policy plus when the coordinator applies it.

    Alarm and audit records document clinical care and who did what; they default to 10 years, and
    fewer than CLINICAL_RETENTION_FLOOR_DAYS (6 years) is refused unless
    ``allow_short_clinical_retention: true`` (then a warning is logged at every load)."""

    enabled: bool = Field(True, description="the coordinator applies the policy at start and every interval_h")
    interval_h: float = Field(6.0, gt=0, le=24 * 7, description="hours between two scheduled runs")
    allow_short_clinical_retention: bool = Field(
        False, description=f"allow alarms_days / audit_days below {CLINICAL_RETENTION_FLOOR_DAYS} days")

    @model_validator(mode="after")
    def _clinical_floor(self) -> "RetentionConfig":
        short = [(name, days) for name in ("alarms_days", "audit_days")
                 if (days := getattr(self, name)) is not None and days < CLINICAL_RETENTION_FLOOR_DAYS]
        if short and not self.allow_short_clinical_retention:
            raise NestedError([((name,), f"must be >= {CLINICAL_RETENTION_FLOOR_DAYS} days (got {days}): alarm "
                                 "and audit records are clinical records; set allow_short_clinical_retention: "
                                 "true if your records policy really allows less") for name, days in short])
        for name, days in short:
            log.warning("retention.%s is %d days, below the %d-day floor for clinical records "
                        "(allow_short_clinical_retention: true)", name, days, CLINICAL_RETENTION_FLOOR_DAYS)
        return self


class WardConfig(_Strict):
    """The whole ward: beds, models, storage, batching, resources and the front ends."""

    name: str = Field("ward", min_length=1)
    beds: list[BedConfig] = Field(min_length=1)
    models: ModelsConfig
    rules: RulePatch = Field(default_factory=RulePatch,  # type: ignore[valid-type]
                             description="ward-wide detection rule (values of ward.config.RuleConfig)")
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    dashboard: DashboardConfig = Field(default_factory=DashboardConfig)
    clip: ClipConfig = Field(default_factory=ClipConfig)
    watchdog: WatchdogConfig = Field(default_factory=WatchdogConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)

    _resolved: dict[str, ResolvedBed] = PrivateAttr(default_factory=dict)

    @field_validator("beds")
    @classmethod
    def _unique_ids(cls, beds: list[BedConfig]) -> list[BedConfig]:
        first: dict[str, int] = {}
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for i, bed in enumerate(beds):
            if bed.bed_id in first:
                problems.append(((i, "bed_id"), f"duplicate bed id {bed.bed_id!r} (also beds[{first[bed.bed_id]}]); "
                                              "bed ids must be unique"))
            else:
                first[bed.bed_id] = i
        if problems:
            raise NestedError(problems)
        return beds

    @model_validator(mode="after")
    def _cross_checks(self) -> "WardConfig":
        problems: list[tuple[tuple[str | int, ...], str]] = []
        ward_rules = self.rules.values()
        if ward_rules:  # each key's type and bounds were checked by RulePatch; here the merged rule
            problems += [(("rules", *loc), msg) for loc, msg in validate_rule_overrides(ward_rules)]
        for i, bed in enumerate(self.beds):
            if not bed.rules.empty:
                problems += [(("beds", i, "rules", *loc), msg)
                             for loc, msg in validate_rule_overrides(bed.rules.values(), base=ward_rules)]
            if round(self.clip.stride_s * bed.fps) < 1:
                problems.append((("beds", i, "fps"), f"clip.stride_s * fps must give at least one frame "
                                                     f"(got {self.clip.stride_s} * {bed.fps})"))
        for name, model, res in (("pose", self.models.pose, self.resources.pose),
                                 ("vsvig", self.models.vsvig, self.resources.vsvig)):
            problems += [(("models", name, *loc), msg + (f"; or resources.{name}.num_gpus: 0 for a CPU"
                                                           if res.device == "cuda" else ""))
                         for loc, msg in model.engine_problems(res.device)]
        if problems:
            raise NestedError(problems)
        self._resolved = {b.bed_id: ResolvedBed(b, b.watchdog or self.watchdog,
                                                stride_frames(self.clip.stride_s, b.fps),
                                                effective_rule(self.rules, b.rules)) for b in self.beds}
        return self

    # -- each bed's values, resolved once --------------------------------------------------------

    def bed(self, bed_id: str) -> BedConfig:
        """The bed with this id (KeyError naming the known ids otherwise)."""
        return self.resolved_bed(bed_id).bed

    def resolved_bed(self, bed_id: str) -> ResolvedBed:
        """The bed with its effective settings (KeyError naming the known ids otherwise)."""
        try:
            return self._resolved[bed_id]
        except KeyError:
            raise KeyError(f"no bed {bed_id!r}; known beds: {[b.bed_id for b in self.beds]}") from None

    @property
    def resolved_beds(self) -> list[ResolvedBed]:
        """Every bed with its effective settings, in config order."""
        return list(self._resolved.values())


@dataclass(frozen=True)
class ResolvedBed:
    """One bed's effective settings: the ward's values where the bed sets none."""

    bed: BedConfig
    watchdog: WatchdogConfig      # the bed's own, else the ward's
    stride_frames: int            # clip stride in sampled frames (clip.stride_s at the bed's fps)
    rule: EffectiveRule           # the configured rule: defaults < ward ``rules:`` < the bed's ``rules``

    @property
    def bed_id(self) -> str:
        return self.bed.bed_id


# ----------------------------------------------------------------------------------------- helpers

def _unreadable(p: Path) -> str | None:
    if not p.exists():
        return "file not found"
    if not p.is_file():
        return "not a file"
    if not os.access(p, os.R_OK):
        return "file not readable"
    return None


