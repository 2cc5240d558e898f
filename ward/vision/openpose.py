"""Lightweight OpenPose (Osokin, arXiv 1811.12004): network, strict checkpoint loader, BN folding.

The module tree reproduces the official ``state_dict`` key layout exactly (``model.*`` dilated
MobileNet v1 trunk, ``cpm.*``, ``initial_stage.*``, ``refinement_stages.{k}.*``), with ReLU/ELU
modules kept at their ``Sequential`` indices, so the published checkpoint (and VSViG's
``pose.pth``) loads with ``strict=True`` after stripping/dropping what the loader allows.

Configurations (:data:`CONFIGS`):

* ``official``: the published network (4,091,698 parameters with 1 refinement stage).
* ``small``: same design at half width everywhere (trunk 16..256, 64 feature channels, 256-wide
  initial heads), about 1/4 of the parameters and MACs; for weights trained in this project.

``forward`` returns ``(heatmaps, pafs)`` of the last stage (N, 19, H/8, W/8) and (N, 38, H/8, W/8);
:meth:`LightweightOpenPose.forward_stages` returns every stage's pair for training losses.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

CHECKPOINT_FORMAT = "ward.openpose/1"
NUM_HEATMAPS = 19
NUM_PAFS = 38
STRIDE = 8


@dataclass(frozen=True)
class OpenPoseConfig:
    """Channel widths of one configuration (the layout, i.e. key names, never changes)."""

    name: str
    trunk: tuple[int, ...]
    """Output channels of ``model.0`` .. ``model.11`` (12 entries)."""
    num_channels: int
    """Cpm output / stage feature width (128 in the official network)."""
    initial_head: int
    """Hidden width of the initial stage's 1x1 heads (512 in the official network)."""


CONFIGS: dict[str, OpenPoseConfig] = {
    "official": OpenPoseConfig("official", (32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512), 128, 512),
    "small": OpenPoseConfig("small", (16, 32, 64, 64, 128, 128, 256, 256, 256, 256, 256, 256), 64, 256),
}

# (stride, dilation) of the depthwise 3x3 in model.1 .. model.11: stride 8 overall, model.7 dilated.
_TRUNK_STRIDES = (1, 2, 1, 2, 1, 1, 1, 1, 1, 1, 1)
_TRUNK_DILATIONS = (1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1)


def _conv(cin: int, cout: int, k: int = 3, *, bn: bool = True, relu: bool = True, bias: bool = True,
          stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """[Conv2d, (BN), (ReLU)] with 'same' padding for odd k (the official ``conv`` block)."""
    pad = dilation * (k // 2)
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, pad, dilation=dilation, bias=bias)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _conv_dw(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """Depthwise 3x3 + BN + ReLU, pointwise 1x1 + BN + ReLU (indices 0..5)."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, dilation, dilation=dilation, groups=cin, bias=False),
        nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


def _conv_dw_no_bn(c: int) -> nn.Sequential:
    """Depthwise 3x3 + ELU, pointwise 1x1 + ELU, no bias, no BN (ELU not in place: exportable)."""
    return nn.Sequential(
        nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False), nn.ELU(),
        nn.Conv2d(c, c, 1, bias=False), nn.ELU(),
    )


class Cpm(nn.Module):
    """Feature adaptation: ``conv(align(x) + trunk(align(x)))``."""

    def __init__(self, cin: int, c: int) -> None:
        super().__init__()
        self.align = _conv(cin, c, 1, bn=False)
        self.trunk = nn.Sequential(*(_conv_dw_no_bn(c) for _ in range(3)))
        self.conv = _conv(c, c, bn=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.align(x)
        return self.conv(a + self.trunk(a))


def _head(cin: int, hidden: int, cout: int) -> nn.Sequential:
    """1x1 + ReLU, then 1x1 without activation (keys ``.0.0.*`` and ``.1.0.*``)."""
    return nn.Sequential(_conv(cin, hidden, 1, bn=False), _conv(hidden, cout, 1, bn=False, relu=False))


class InitialStage(nn.Module):
    def __init__(self, c: int, hidden: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(*(_conv(c, c, bn=False) for _ in range(3)))
        self.heatmaps = _head(c, hidden, NUM_HEATMAPS)
        self.pafs = _head(c, hidden, NUM_PAFS)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.trunk(x)
        return self.heatmaps(t), self.pafs(t)


class RefinementStageBlock(nn.Module):
    """``initial(x) + trunk(initial(x))``; the trunk convs have a bias *and* a BN (as published)."""

    def __init__(self, cin: int, c: int) -> None:
        super().__init__()
        self.initial = _conv(cin, c, 1, bn=False)
        self.trunk = nn.Sequential(_conv(c, c), _conv(c, c, dilation=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.initial(x)
        return a + self.trunk(a)


class RefinementStage(nn.Module):
    def __init__(self, cin: int, c: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(RefinementStageBlock(cin, c), *(RefinementStageBlock(c, c) for _ in range(4)))
        self.heatmaps = _head(c, c, NUM_HEATMAPS)
        self.pafs = _head(c, c, NUM_PAFS)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.trunk(x)
        return self.heatmaps(t), self.pafs(t)


class LightweightOpenPose(nn.Module):
    """Dilated MobileNet v1 (stride 8) + Cpm + initial stage + ``num_refinement_stages`` stages.

    Input: (N, 3, H, W) float, BGR, ``(x - 128) / 256`` (see :func:`ward.vision.pose.preprocess`).
    """

    def __init__(self, config: str | OpenPoseConfig = "official", num_refinement_stages: int = 1) -> None:
        super().__init__()
        cfg = resolve_config(config)
        if num_refinement_stages < 0:
            raise ValueError(f"num_refinement_stages must be >= 0, got {num_refinement_stages}")
        self.config = cfg
        self.num_refinement_stages = int(num_refinement_stages)
        t = cfg.trunk
        self.model = nn.Sequential(
            _conv(3, t[0], bias=False, stride=2),
            *(_conv_dw(t[i - 1], t[i], _TRUNK_STRIDES[i - 1], _TRUNK_DILATIONS[i - 1]) for i in range(1, 12)),
        )
        c = cfg.num_channels
        self.cpm = Cpm(t[-1], c)
        self.initial_stage = InitialStage(c, cfg.initial_head)
        self.refinement_stages = nn.ModuleList(
            RefinementStage(c + NUM_HEATMAPS + NUM_PAFS, c) for _ in range(self.num_refinement_stages))

    def forward_stages(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(heatmaps, pafs) of every stage, initial first (the training loss supervises all)."""
        features = self.cpm(self.model(x))
        outs = [self.initial_stage(features)]
        for stage in self.refinement_stages:
            outs.append(stage(torch.cat([features, *outs[-1]], dim=1)))
        return outs

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(heatmaps (N,19,H/8,W/8), pafs (N,38,H/8,W/8)) of the last stage."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a (N, 3, H, W) BGR-normalised batch, got shape {tuple(x.shape)}")
        return self.forward_stages(x)[-1]


def resolve_config(config: str | OpenPoseConfig) -> OpenPoseConfig:
    """Config object from a name (``official`` | ``small``) or pass an :class:`OpenPoseConfig` through."""
    if isinstance(config, OpenPoseConfig):
        return config
    if config not in CONFIGS:
        raise ValueError(f"unknown Lightweight OpenPose config {config!r}; choose one of {sorted(CONFIGS)}")
    return CONFIGS[config]


def build_openpose(config: str | OpenPoseConfig = "official", num_refinement_stages: int = 1) -> LightweightOpenPose:
    """A freshly initialised network (train mode, as any nn.Module)."""
    return LightweightOpenPose(config, num_refinement_stages)


# --------------------------------------------------------------------------------------------- loading

_REFINE_RE = re.compile(r"^refinement_stages\.(\d+)\.")


def _read_checkpoint(path: str | Path, trusted: bool) -> Any:
    """torch.load with weights_only, and clear messages for the usual broken downloads."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"pose checkpoint not found: {p} (run `ward models fetch` or place the file there)")
    with p.open("rb") as fh:
        head = fh.read(64)
    if head.startswith(b"version https://git-lfs"):
        raise ValueError(f"{p} is a Git LFS pointer, not the weights: download the LFS object (`ward models fetch`)")
    if head.lstrip().startswith((b"<", b"{")):
        raise ValueError(f"{p} looks like an HTML/JSON page, not a torch checkpoint: the download failed; fetch it again")
    try:
        return torch.load(p, map_location="cpu", weights_only=not trusted)
    except Exception as exc:  # pickle errors of many kinds
        hint = "" if trusted else " (if you trust this file, pass trusted=True to allow arbitrary pickles)"
        raise ValueError(f"cannot read pose checkpoint {p}: {exc}{hint}") from exc


def _unwrap(obj: Any) -> tuple[Mapping[str, torch.Tensor], dict[str, Any]]:
    """(state_dict, header) from a project checkpoint, a training container or a bare state_dict."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"pose checkpoint must be a dict, got {type(obj).__name__}")
    header: dict[str, Any] = {}
    if obj.get("format") == CHECKPOINT_FORMAT:
        header = {k: obj.get(k) for k in ("config", "num_refinement_stages", "metadata")}
        state = obj.get("state_dict")
    elif "state_dict" in obj:
        state = obj["state_dict"]
    else:
        state = obj
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError("pose checkpoint has no state_dict of tensors (expected {'state_dict': {...}} or a bare one)")
    return state, header


def prepare_state_dict(state: Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Map a checkpoint's state_dict onto ``model``'s keys, or raise listing every problem.

    Allowed: a ``module.`` prefix (DataParallel), refinement stages beyond the model's count
    (dropped: the published checkpoint holds 3, inference uses 1), absent ``num_batches_tracked``
    (unused in eval; filled from the model). Anything else missing, unexpected or of the wrong shape
    is an error, unlike the official loader which silently keeps random weights.
    """
    n_ref = getattr(model, "num_refinement_stages", None)
    src: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        k = key[len("module."):] if key.startswith("module.") else key
        m = _REFINE_RE.match(k)
        if m and n_ref is not None and int(m.group(1)) >= n_ref:
            continue
        src[k] = value
    target = model.state_dict()
    missing = [k for k in target if k not in src and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in src if k not in target]
    mismatched = [f"{k}: checkpoint {tuple(src[k].shape)} vs model {tuple(v.shape)}"
                  for k, v in target.items() if k in src and src[k].shape != v.shape]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
        if mismatched:
            parts.append(f"shape mismatch ({len(mismatched)}): {'; '.join(mismatched)}")
        raise ValueError("checkpoint does not fit the Lightweight OpenPose "
                         f"{getattr(getattr(model, 'config', None), 'name', '?')!r} model with {n_ref} "
                         "refinement stage(s): " + " | ".join(parts)
                         + " (check config=, num_refinement_stages= and that the file is a pose checkpoint)")
    out = {k: src.get(k, v) for k, v in target.items()}
    return out


def load_openpose(path_or_state: str | Path | Mapping[str, Any], config: str | OpenPoseConfig | None = None,
                  num_refinement_stages: int | None = None, device: str | torch.device = "cpu",
                  *, trusted: bool = False) -> LightweightOpenPose:
    """Build the network and load weights strictly; returns it in eval mode on ``device``.

    ``path_or_state``: a file path, or an already loaded object: ``{'state_dict': ...}`` (the
    official training container), a bare state_dict, or a project checkpoint
    (``format == "ward.openpose/1"``, see :func:`save_openpose_checkpoint`). ``config`` and
    ``num_refinement_stages`` default to the project checkpoint's values, else ``official`` / 1.
    The checkpoint's ``metadata`` dict ends up in ``model.checkpoint_metadata``.
    """
    obj = path_or_state if isinstance(path_or_state, Mapping) else _read_checkpoint(path_or_state, trusted)
    state, header = _unwrap(obj)
    if header:
        file_cfg = header.get("config")
        if config is not None and file_cfg is not None and resolve_config(config).name != file_cfg:
            raise ValueError(f"checkpoint was saved for config {file_cfg!r}, but config={resolve_config(config).name!r} "
                             "was requested; omit config= to use the checkpoint's")
        config = config if config is not None else file_cfg
        if num_refinement_stages is None:
            num_refinement_stages = header.get("num_refinement_stages")
    model = build_openpose(config if config is not None else "official",
                           1 if num_refinement_stages is None else int(num_refinement_stages))
    model.load_state_dict(prepare_state_dict(state, model), strict=True)
    model.checkpoint_metadata = dict(header.get("metadata") or {})
    return model.to(device).eval()


def save_openpose_checkpoint(model: LightweightOpenPose, path: str | Path, **metadata: Any) -> Path:
    """Write ``{"format", "config", "num_refinement_stages", "state_dict", "metadata"}`` for load_openpose."""
    if not isinstance(model, LightweightOpenPose):
        raise ValueError(f"expected a LightweightOpenPose model, got {type(model).__name__}")
    if getattr(model, "fused", False):
        raise ValueError("cannot save a BN-fused model: save the model before fuse_for_inference")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    torch.save({
        "format": CHECKPOINT_FORMAT,
        "config": model.config.name,
        "num_refinement_stages": model.num_refinement_stages,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": metadata,
    }, tmp)
    tmp.replace(p)
    return p


# --------------------------------------------------------------------------------------------- inference

def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold eval-mode BN statistics into the preceding conv's weight and bias, in place."""
    std = torch.sqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    factor = gamma / std
    with torch.no_grad():
        conv.weight.mul_(factor.reshape(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        new_bias = (bias - bn.running_mean) * factor + beta
        conv.bias = nn.Parameter(new_bias.detach().clone())


def fuse_for_inference(model: nn.Module, channels_last: bool = True) -> nn.Module:
    """An eval-mode copy with every Conv2d->BatchNorm2d pair folded (BN replaced by Identity).

    Outputs equal the unfused eval model to ~1e-5; the copy is for inference only (its state_dict
    no longer has the official layout). ``channels_last`` converts the weights' memory format,
    which is faster on CPU with oneDNN; feed it channels_last inputs too.
    """
    fused = copy.deepcopy(model).eval()
    for seq in fused.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        children = list(seq._modules.items())
        for (_, a), (name_b, b) in zip(children, children[1:]):
            if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
                _fold(a, b)
                seq._modules[name_b] = nn.Identity()
    fused.fused = True
    if channels_last:
        fused = fused.to(memory_format=torch.channels_last)
    fused.channels_last = channels_last
    for p in fused.parameters():
        p.requires_grad_(False)
    return fused
