"""VSViG: video seizure classification from joint patches (arXiv 2311.14775), CPU/GPU inference core.

The module tree and ``state_dict()`` follow the official layout key for key (1283 entries), so the
published checkpoints load with strict checking. Two graph modes:

* ``"official"`` reproduces what the released code computes. Its graph modules alias their tensors,
  so the relative term is zero and each Grapher reduces to ``ReLU(x + c)`` with ``c`` a per-channel
  constant: ``fc4(IntraPartMR.nn(0))``. The inter-part branch has no effect on the output.
* ``"paper"`` computes the paper's max-relative graph convolutions: for joint ``i``, the inter-part
  aggregate is ``max_{j not in part(i)} (x_j - x_i)`` and the intra-part aggregate is
  ``max_{j in part(i), j != i} (x_j - x_i)``. Parts are consecutive triples of joints; the dynamic
  partition orders move whole parts, so the parts stay the same sets of joints in every block.

Both modes apply the dynamic joint permutations (order file + seed schedule) before each
Part_3DCNN. ``nn_inter`` / ``nn_intra`` exist only so checkpoints keep their layout: no forward
uses them. The temporal conv is a (3, 3) conv over (time, joint) with replicate padding of those
two axes; the official (3, 3, 1) Conv3d over a replicate-padded singleton axis computes the same
numbers three times and keeps one. Weights are stored in the official Conv3d shape and viewed.

Paper-mode Grapher (a choice; the official code does not pin it down): ``h = x + fc2(Inter(fc1(x)))``,
``out = ReLU(h + fc4(Intra(fc3(h))))``, each graph module being ``nn(cat[y, max_relative(y)])``.

Layout: ``forward`` runs (B, C, T, P) NCHW tensors (training, reference). After
``fuse_for_inference()`` eval forwards run on channels-last (B, T, P, C) activations: 1x1 convs as
GEMMs, the joint permutation and replicate padding as one gather, BN folded (paper mode).
The official-mode stem reproduces the official per-patch conv bit for bit (see ``_stem``): this
calibrated network amplifies float32 rounding differences ~50x, so parity at 1e-5 needs it.
"""

from __future__ import annotations

import datetime as _dt
import functools
from pathlib import Path
from typing import Any, Final, Literal, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ward.core.clip import CLIP_FRAMES, PATCH_SIZE
from ward.core.keypoints import JOINTS_PER_PART, NUM_PARTS, VSVIG_15
from ward.vision.partition_order import (
    OFFICIAL_SEEDS,
    generate_partition_orders,
    load_partition_orders,
    validate_partition_orders,
)

Variant = Literal["light", "base"]
GraphMode = Literal["official", "paper"]

CHECKPOINT_FORMAT: Final[str] = "ward.vsvig/1"
NUM_FRAMES: Final[int] = CLIP_FRAMES
NUM_JOINTS: Final[int] = NUM_PARTS * JOINTS_PER_PART
VARIANTS: Final[dict[str, tuple[int, ...]]] = {"light": (12, 24, 48, 96), "base": (24, 48, 96, 192)}
LAYERS: Final[tuple[int, ...]] = (2, 2, 6, 2)
EXPANSION: Final[int] = 2
HEAD_DIM: Final[int] = 256
GRAPH_GROUPS: Final[int] = 4
ORDER_FILE_NAME: Final[str] = "dy_point_order.pt"


class VSViGLoadError(ValueError):
    """A state_dict or checkpoint does not fit the model (lists every offending key)."""


# --------------------------------------------------------------------------------------------- layers
class ConvBN(nn.Sequential):
    """Conv (weight kept in its official 4-D or 5-D shape) + BatchNorm, keys ``0.*`` and ``1.*``.

    The forward pass runs a 2-D conv over (T, P) with the weight viewed as 4-D; trailing singleton
    kernel axes of the official Conv3d are dropped. After ``fuse()`` (inference only) the BN is
    folded into the conv weight and bias, which must keep outputs equal to 1e-5.
    """

    def __init__(self, cin: int, cout: int, kernel: tuple[int, ...], *, groups: int = 1,
                 stride: tuple[int, int] = (1, 1), act: bool = False) -> None:
        conv = nn.Module()
        conv.weight = nn.Parameter(torch.empty(cout, cin // groups, *kernel))
        conv.bias = nn.Parameter(torch.empty(cout))
        super().__init__(conv, nn.BatchNorm2d(cout))
        k2 = tuple(kernel[:2]) if len(kernel) >= 2 else (1, 1)
        self.kernel2d: tuple[int, int] = (int(k2[0]), int(k2[1]))
        self.groups = groups
        self.stride = stride
        self.act = act
        self._fused: tuple[torch.Tensor, torch.Tensor] | None = None
        fan_in = (cin // groups) * self.kernel2d[0] * self.kernel2d[1]
        nn.init.kaiming_uniform_(conv.weight.view(cout, -1), a=5 ** 0.5)
        nn.init.uniform_(conv.bias, -fan_in ** -0.5, fan_in ** -0.5)

    def weight4d(self) -> torch.Tensor:
        w = self[0].weight
        return w.reshape(w.shape[0], w.shape[1], *self.kernel2d)

    _fold: bool = True

    @torch.no_grad()
    def fuse(self, fold_bn: bool = True) -> None:
        """Cache inference weights: BN folded into the conv (``fold_bn``) or kept separate (exact)."""
        self._fold = fold_bn
        bn: nn.BatchNorm2d = self[1]
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        w = self.weight4d() * scale.view(-1, 1, 1, 1)
        b = (self[0].bias - bn.running_mean) * scale + bn.bias
        self._fused = (w.contiguous(), b.contiguous())
        if not fold_bn:
            w = self.weight4d()
            self._fused = (w.contiguous(), self[0].bias)
        if self.kernel2d == (1, 1):  # dense (Cout, Cin) matrix for GEMMs on channels-last rows
            w2 = w.flatten(1)
            if self.groups > 1:  # grouped conv as block-diagonal GEMMs, one per input half
                cout, k = w2.shape
                blocks = w2.view(self.groups, cout // self.groups, k).unbind(0)
                half = self.groups // 2
                self._halves = (torch.block_diag(*blocks[:half]).contiguous(),
                                torch.block_diag(*blocks[half:]).contiguous())
                w2 = torch.block_diag(*blocks)
            self._lin = w2.contiguous()
        else:
            self._conv_cl = w.contiguous(memory_format=torch.channels_last)

    def unfuse(self) -> None:
        self._fused = None

    def _bn_last(self, y: torch.Tensor) -> torch.Tensor:
        """Eval BN on channels-last rows (..., C), the same elementwise formula as BatchNorm2d."""
        bn: nn.BatchNorm2d = self[1]
        return F.batch_norm(y.movedim(-1, 1), bn.running_mean, bn.running_var, bn.weight, bn.bias,
                            False, 0.0, bn.eps).movedim(1, -1)

    def lin(self, x: torch.Tensor) -> torch.Tensor:
        """1x1 conv (+BN) on channels-last rows (..., Cin) -> (..., Cout); needs ``fuse()`` first."""
        if self._fold:
            y = F.linear(x, self._lin, self._fused[1])  # type: ignore[index]
        else:
            y = self._bn_last(F.linear(x, self._lin, self[0].bias))
        return y.relu_() if self.act else y

    def lin_cat(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Grouped 1x1 conv of ``cat([a, b], -1)`` without the concatenation: each half of the
        groups sees only one input half, so two GEMMs with half-size block-diagonal weights."""
        if self.groups % 2 or a.shape[-1] != b.shape[-1]:
            return self.lin(torch.cat([a, b], dim=-1))
        n = self._halves[0].shape[0]
        bias = self._fused[1] if self._fold else self[0].bias  # type: ignore[index]
        y = torch.cat([F.linear(a, self._halves[0], bias[:n]), F.linear(b, self._halves[1], bias[n:])], dim=-1)
        if not self._fold:
            y = self._bn_last(y)
        return y.relu_() if self.act else y

    def conv_cl(self, x: torch.Tensor) -> torch.Tensor:
        """k x k conv (no padding, +BN) on a channels_last (N, C, H, W) tensor; needs ``fuse()``."""
        if self._fold:
            y = F.conv2d(x, self._conv_cl, self._fused[1], self.stride)  # type: ignore[index]
        else:
            y = self[1](F.conv2d(x, self._conv_cl, self[0].bias, self.stride))
        return y.relu_() if self.act else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, Cin, H, W)
        if self._fused is not None and self._fold and not self.training:
            y = F.conv2d(x, self._fused[0], self._fused[1], self.stride, 0, 1, self.groups)
        else:
            y = self[1](F.conv2d(x, self.weight4d(), self[0].bias, self.stride, 0, 1, self.groups))
        return F.relu(y) if self.act else y


@functools.lru_cache(maxsize=32)
def _others(n: int, device: torch.device) -> torch.Tensor:
    """(n * (n-1),) indices: for each slot i, the other n-1 slots (i+1, ..., i+n-1 mod n)."""
    return ((torch.arange(n, device=device)[:, None] + torch.arange(1, n, device=device)[None, :]) % n).flatten()


def max_relative(x: torch.Tensor, mode: Literal["inter", "intra"], dim: int = -1) -> torch.Tensor:
    """Max-relative aggregate over the joint axis ``dim`` (size P=15) of ``x``.

    ``inter``: out_i = max_{j in another part} x_j - x_i; ``intra``: out_i = max_{j in i's part,
    j != i} x_j - x_i. Parts are consecutive triples. Vectorised with part-wise maxima and one
    gather of the other parts / part mates: no Python loops over joints or parts.
    """
    d = dim % x.ndim
    if x.shape[d] != NUM_JOINTS:
        raise ValueError(f"max_relative expects {NUM_JOINTS} joints on axis {dim}, got shape {tuple(x.shape)}")
    xp = x.unflatten(d, (NUM_PARTS, JOINTS_PER_PART))  # part axis d, joint-in-part axis d+1
    if mode == "inter":
        pmax = xp.amax(d + 1, keepdim=True)  # (.., 5, 1, ..)
        idx = _others(NUM_PARTS, x.device)
        nbr = pmax.index_select(d, idx).unflatten(d, (NUM_PARTS, NUM_PARTS - 1)).amax(d + 1)
    elif mode == "intra":
        idx = _others(JOINTS_PER_PART, x.device)
        nbr = xp.index_select(d + 1, idx).unflatten(d + 1, (JOINTS_PER_PART, JOINTS_PER_PART - 1)).amax(d + 2)
    else:
        raise ValueError(f"mode must be 'inter' or 'intra', got {mode!r}")
    return (nbr - xp).flatten(d, d + 1)


class PartMR(nn.Module):
    """Part max-relative graph conv: ``nn(cat[x, max_relative(x)])`` (grouped 1x1 conv + BN + ReLU)."""

    def __init__(self, channels: int, mode: Literal["inter", "intra"]) -> None:
        super().__init__()
        self.mode = mode
        self.nn = ConvBN(2 * channels, 2 * channels, (1, 1), groups=GRAPH_GROUPS, act=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nn(torch.cat([x, max_relative(x, self.mode)], dim=1))

    def on_zeros(self, like: torch.Tensor) -> torch.Tensor:
        """What the aliased official module returns: ``nn`` applied to an all-zero input, (1, 2C, 1, 2)."""
        cin = self.nn[0].weight.shape[1] * GRAPH_GROUPS
        # two positions so BN also works in training mode (batch stats of a constant: var 0)
        return self.nn(like.new_zeros(1, cin, 1, 2))


class Grapher(nn.Module):
    """Inter-part then intra-part graph conv with 1x1 projections, residuals and a final ReLU."""

    def __init__(self, cin: int, hidden: int, graph_mode: GraphMode) -> None:
        super().__init__()
        self.graph_mode = graph_mode
        # unused by every forward: kept so checkpoints keep the official layout
        self.nn_inter = ConvBN(5 * hidden, 5 * hidden, (1, 1), groups=GRAPH_GROUPS, act=True)
        self.nn_intra = ConvBN(2 * hidden, 2 * hidden, (1, 1), groups=GRAPH_GROUPS, act=True)
        self.fc1 = ConvBN(cin, hidden, (1, 1))
        self.fc2 = ConvBN(2 * hidden, cin, (1, 1))
        self.fc3 = ConvBN(cin, hidden, (1, 1))
        self.fc4 = ConvBN(2 * hidden, cin, (1, 1))
        self.InterPartMR = PartMR(hidden, "inter")
        self.IntraPartMR = PartMR(hidden, "intra")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.graph_mode == "official":
            return F.relu(x + self.fc4(self.IntraPartMR.on_zeros(x))[..., :1])
        h = x + self.fc2(self.InterPartMR(self.fc1(x)))
        return F.relu(h + self.fc4(self.IntraPartMR(self.fc3(h))))

    def fast(self, x: torch.Tensor) -> torch.Tensor:
        """Fused inference on channels-last activations (B, T, P, C)."""
        if self.graph_mode == "official":
            return (x + self._const).relu_()
        y = self.fc1.lin(x)
        h = self.fc2.lin(self.InterPartMR.nn.lin_cat(y, max_relative(y, "inter", dim=2))).add_(x)
        y = self.fc3.lin(h)
        return self.fc4.lin(self.IntraPartMR.nn.lin_cat(y, max_relative(y, "intra", dim=2))).add_(h).relu_()

    @torch.no_grad()
    def fuse(self, fold_bn: bool = True) -> None:
        self._const = self.fc4(self.IntraPartMR.on_zeros(self.fc4[0].weight))[0, :, 0, 0].contiguous()


class Part3DCNN(nn.Module):
    """Permute joints, then bottleneck (1x1, (3,3) over (time, joint), 1x1) + 1x1 residual, ReLU."""

    def __init__(self, cin: int, hidden: int, stride: int) -> None:
        super().__init__()
        cout = hidden * EXPANSION
        self.conv1 = ConvBN(cin, hidden, (1, 1, 1), act=True)
        self.conv2 = ConvBN(hidden, hidden, (3, 3, 1), stride=(stride, 1), act=True)
        self.conv3 = ConvBN(hidden, cout, (1, 1, 1), act=True)
        self.downsample = ConvBN(cin, cout, (1, 1, 1), stride=(stride, 1))
        self.register_buffer("order", torch.arange(NUM_JOINTS), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.index_select(3, self.order)
        y = self.conv2(F.pad(self.conv1(x), (1, 1, 1, 1), mode="replicate"))
        return F.relu(self.conv3(y) + self.downsample(x))

    def _pad_index(self, t: int) -> torch.Tensor:
        """Flat (T+2)*(P+2) gather index: replicate padding of (time, joint) and the joint permutation."""
        key = (t, self.order.device, self.order.data_ptr())
        cache: dict = self.__dict__.setdefault("_pad_cache", {})
        if key not in cache:
            cache.clear()
            cache[key] = self._make_pad_index(t)
        return cache[key]

    def _make_pad_index(self, t: int) -> torch.Tensor:
        dev = self.order.device
        it = torch.arange(-1, t + 1, device=dev).clamp_(0, t - 1)
        ip = self.order[torch.arange(-1, NUM_JOINTS + 1, device=dev).clamp_(0, NUM_JOINTS - 1)]
        return (it[:, None] * NUM_JOINTS + ip[None, :]).flatten()

    def fast(self, x: torch.Tensor) -> torch.Tensor:
        """Fused inference on channels-last activations (B, T, P, C); same maths as ``forward``."""
        b, t, p, _ = x.shape
        y = self.conv1.lin(x)  # pointwise, so permuting after it is the same as before it
        yp = y.view(b, t * p, -1).index_select(1, self._pad_index(t)).view(b, t + 2, p + 2, -1)
        z = self.conv2.conv_cl(yp.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # (B, T', P, h)
        z = self.conv3.lin(z)
        s = self.conv2.stride[0]
        res = self.downsample.lin(x[:, ::s].index_select(2, self.order))
        return z.add_(res).relu_()


class Stem(nn.Module):
    """Conv + BN with keys ``stem.0.*`` / ``stem.1.*``."""

    def __init__(self, cin: int, cout: int, kernel: int) -> None:
        super().__init__()
        self.stem = ConvBN(cin, cout, (kernel, kernel))


# ---------------------------------------------------------------------------------------------- model
class VSViG(nn.Module):
    """VSViG classifier: (patches, keypoints) of a 30-frame clip -> seizure probability.

    ``forward(patches (B,30,15,3,32,32) float on the 0..255 scale, kpts (B,30,15,3)) -> (B,)``.
    """

    def __init__(self, variant: Variant = "light", graph_mode: GraphMode = "paper",
                 partition_order: torch.Tensor | Sequence[Sequence[int]] | None = None,
                 metadata: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
        if graph_mode not in ("official", "paper"):
            raise ValueError(f"graph_mode must be 'official' or 'paper', got {graph_mode!r}")
        self.variant: str = variant
        self.graph_mode: str = graph_mode
        self.metadata: dict[str, Any] = dict(metadata or {})
        chans = VARIANTS[variant]
        c0 = chans[0]
        self.stem = Stem(3, c0, PATCH_SIZE)
        self.stem_pe = Stem(3, c0, 1)
        blocks: list[nn.Module] = []
        cin = c0
        for stage, (hidden, n_layers) in enumerate(zip(chans, LAYERS)):
            strides = ([2] if stage > 0 else []) + [1] * n_layers
            for s in strides:
                blocks += [Grapher(cin, hidden, graph_mode), Part3DCNN(cin, hidden, s)]
                cin = hidden * EXPANSION
        self.backbone = nn.Sequential(*blocks)
        self.fc = nn.Sequential(nn.Conv2d(cin, HEAD_DIM, 1), nn.BatchNorm2d(HEAD_DIM),
                                nn.ReLU(), nn.Conv2d(HEAD_DIM, 1, 1))
        self.set_partition_order(generate_partition_orders(0) if partition_order is None else partition_order)

    # ------------------------------------------------------------------------------ partition order
    @property
    def partition_order(self) -> torch.Tensor:
        """The (n, 15) order table the seed schedule indexes."""
        return self._partition_order

    def set_partition_order(self, orders: torch.Tensor | Sequence[Sequence[int]]) -> None:
        """Install an order table; block k permutes its input joints with ``orders[OFFICIAL_SEEDS[k]]``."""
        table = validate_partition_orders(orders, whole_parts=self.graph_mode == "paper")
        self._partition_order = table
        cnns = [m for m in self.backbone if isinstance(m, Part3DCNN)]
        for block, seed in zip(cnns, OFFICIAL_SEEDS, strict=True):
            block.order = table[seed].to(block.order.device)
            block.__dict__.pop("_pad_cache", None)

    # ------------------------------------------------------------------------------------- forward
    @staticmethod
    def _check_inputs(patches: torch.Tensor, kpts: torch.Tensor) -> None:
        exp_p = f"(B,{NUM_FRAMES},{NUM_JOINTS},3,{PATCH_SIZE},{PATCH_SIZE})"
        exp_k = f"(B,{NUM_FRAMES},{NUM_JOINTS},3)"
        if not isinstance(patches, torch.Tensor) or not isinstance(kpts, torch.Tensor):
            raise ValueError(f"patches and kpts must be torch tensors of shape {exp_p} and {exp_k}")
        if patches.ndim != 6 or tuple(patches.shape[1:]) != (NUM_FRAMES, NUM_JOINTS, 3, PATCH_SIZE, PATCH_SIZE):
            raise ValueError(f"patches must have shape {exp_p}, got {tuple(patches.shape)}")
        if kpts.ndim != 4 or tuple(kpts.shape[1:]) != (NUM_FRAMES, NUM_JOINTS, 3):
            raise ValueError(f"kpts must have shape {exp_k} (x, y, confidence), got {tuple(kpts.shape)}")
        if kpts.shape[0] != patches.shape[0]:
            raise ValueError(f"patches and kpts batch sizes differ: {patches.shape[0]} vs {kpts.shape[0]}")
        if patches.shape[0] == 0:
            raise ValueError(f"empty batch: patches must have shape {exp_p} with B >= 1")
        for name, t in (("patches", patches), ("kpts", kpts)):
            if not t.dtype.is_floating_point:
                raise ValueError(f"{name} must be a floating tensor (got {t.dtype}); e.g. patches.float() "
                                 f"on the 0..255 scale, shape {exp_p if name == 'patches' else exp_k}")

    def forward(self, patches: torch.Tensor, kpts: torch.Tensor) -> torch.Tensor:
        """Seizure probability per clip, shape (B,)."""
        return torch.sigmoid(self.logits(patches, kpts))

    def logits(self, patches: torch.Tensor, kpts: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid score per clip, shape (B,) (for BCE-with-logits training and calibration)."""
        self._check_inputs(patches, kpts)
        if self._fast and not self.training:
            return self._forward_fast(patches, kpts)
        w = self.stem.stem[0].weight
        patches = patches.to(w.dtype)
        kpts = kpts.to(w.dtype)
        b, t, p = patches.shape[:3]
        x = self._stem(patches.reshape(b * t * p, 3, PATCH_SIZE, PATCH_SIZE))  # (BTP, C)
        x = x.view(b, t, p, -1).permute(0, 3, 1, 2)  # (B, C, T, P)
        x = x + self.stem_pe.stem(kpts.permute(0, 3, 1, 2))
        x = self.backbone(x)
        x = x.mean(dim=(2, 3), keepdim=True)
        return self.fc(x).view(b)

    _fast: bool = False

    def _forward_fast(self, patches: torch.Tensor, kpts: torch.Tensor) -> torch.Tensor:
        """Inference on channels-last activations (B, T, P, C): 1x1 convs as GEMMs, BN folded."""
        dt = self.stem.stem[0].weight.dtype
        b, t, p = patches.shape[:3]
        x = self._stem(patches.to(dt).reshape(b * t * p, 3, PATCH_SIZE, PATCH_SIZE)).view(b, t, p, -1)
        x = x + self.stem_pe.stem.lin(kpts.to(dt))
        for block in self.backbone:
            x = block.fast(x)
        pooled = x.mean(dim=(1, 2))  # (B, C)
        hidden = F.linear(pooled, self._head[0], self._head[1]).relu_()
        return F.linear(hidden, self._head[2], self._head[3]).view(b)

    def _stem(self, patches: torch.Tensor) -> torch.Tensor:
        """Patch embedding (N, 3, 32, 32) -> (N, C): one 32x32 stride-32 conv per patch, then BN.

        Official mode runs one single-image conv over a (1, 3, N, 32, 32) view of the patches: the
        same numbers, bit for bit, as the official per-patch convs (a batched conv or a GEMM rounds
        differently, and the calibrated official network amplifies that past 1e-5). Paper mode uses
        one GEMM, about twice as fast.
        """
        conv: ConvBN = self.stem.stem
        w, bias = conv[0].weight, conv[0].bias
        n = patches.shape[0]
        if self.graph_mode == "official":
            # (1, 3, N, 32, 32) view of the patches: a single-image conv, no per-patch loop, no copy
            y = F.conv3d(patches.transpose(0, 1).unsqueeze(0), w.unsqueeze(2), bias,
                         stride=(1, PATCH_SIZE, PATCH_SIZE))[0, :, :, 0, 0].t().contiguous()  # (N, C)
        else:
            y = F.linear(patches.reshape(n, -1), w.reshape(w.shape[0], -1), bias)
        return conv[1](y[:, :, None, None]).view(n, -1)

    # ----------------------------------------------------------------------------------- inference
    def fuse_for_inference(self, channels_last: bool = True, fold_bn: bool | None = None) -> "VSViG":
        """Prepare cached inference weights (state_dict unchanged); returns self in eval mode.

        ``channels_last``: run on (B, T, P, C) activations with 1x1 convs as GEMMs, joint permutation
        and replicate padding as one gather (fastest on CPU). ``fold_bn``: fold BN into the convs;
        default on in paper mode, off in official mode, where the folded weights' different float32
        rounding, amplified by the calibrated official network, would eat the 1e-5 parity budget.
        Call again after changing weights or partition orders; loading a state_dict drops the cache.
        """
        if fold_bn is None:
            fold_bn = self.graph_mode == "paper"
        self.eval()
        for m in self.modules():
            if isinstance(m, (ConvBN, Grapher)):
                m.fuse(fold_bn)
        with torch.no_grad():
            conv, bn, _, out = self.fc
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            self._head = (conv.weight.flatten(1) * scale[:, None], (conv.bias - bn.running_mean) * scale + bn.bias,
                          out.weight.flatten(1), out.bias)
        self._fast = channels_last
        return self

    def unfuse(self) -> "VSViG":
        for m in self.modules():
            if isinstance(m, ConvBN):
                m.unfuse()
        self._fast = False
        return self

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:  # loading drops fused caches
        self.unfuse()
        super()._load_from_state_dict(*args, **kwargs)


@torch.no_grad()
def calibrate_batchnorm(model: VSViG, n_batches: int = 4, batch_size: int = 4, seed: int = 0) -> VSViG:
    """Set every BN's running statistics from random-ish clips (cumulative average), then eval().

    For benchmarks and tests of untrained models: fresh running stats (mean 0, var 1) leave the
    activations badly scaled, which overflows or produces denormals and distorts timings.
    """
    gen = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over the calibration batches
    model.train()
    dev = next(model.parameters()).device
    for _ in range(n_batches):
        patches, kpts = random_clips(batch_size, generator=gen)
        model(patches.to(dev), kpts.to(dev))
    for m, mom in zip(bns, saved):
        m.momentum = mom
    return model.eval()


def random_clips(batch_size: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Random but image-like inputs: smooth patches on 0..255 and keypoints in [0, 1]."""
    g = generator
    base = torch.rand(batch_size, 1, NUM_JOINTS, 3, 8, 8, generator=g) * 255
    drift = torch.randn(batch_size, NUM_FRAMES, NUM_JOINTS, 3, 8, 8, generator=g).cumsum(1) * 4
    small = (base + drift).clamp(0, 255).flatten(0, 2)
    patches = F.interpolate(small, size=(PATCH_SIZE, PATCH_SIZE), mode="bilinear", align_corners=False)
    patches = patches.view(batch_size, NUM_FRAMES, NUM_JOINTS, 3, PATCH_SIZE, PATCH_SIZE)
    kpts = torch.rand(batch_size, 1, NUM_JOINTS, 3, generator=g)
    kpts = (kpts + 0.01 * torch.randn(batch_size, NUM_FRAMES, NUM_JOINTS, 3, generator=g).cumsum(1)).clamp(0, 1)
    return patches, kpts


# -------------------------------------------------------------------------------------------- loading
def build_vsvig(variant: Variant = "light", graph_mode: GraphMode = "paper",
                partition_order: torch.Tensor | Sequence[Sequence[int]] | str | Path | None = None) -> VSViG:
    """A freshly initialised VSViG; ``partition_order`` defaults to ward's seed-0 generated table."""
    if isinstance(partition_order, (str, Path)):
        partition_order = load_partition_orders(partition_order)
    return VSViG(variant, graph_mode, partition_order)


def _strip_prefix(sd: Mapping[str, Any]) -> dict[str, Any]:
    if sd and all(k.startswith("module.") for k in sd):
        return {k[len("module."):]: v for k, v in sd.items()}
    return dict(sd)


def check_state_dict(model: nn.Module, sd: Mapping[str, Any]) -> None:
    """Raise VSViGLoadError listing missing keys, unexpected keys and shape mismatches (if any)."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    mism = [f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(v.shape)}"
            for k, v in own.items() if k in sd and (not isinstance(sd[k], torch.Tensor) or sd[k].shape != v.shape)]
    if missing or unexpected or mism:
        lines = []
        for title, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mism)):
            if items:
                lines.append(f"{title} ({len(items)}): " + ", ".join(items))
        raise VSViGLoadError("state_dict does not fit VSViG-" + getattr(model, "variant", "?") + ": "
                             + "; ".join(lines))


def _infer_variant(sd: Mapping[str, Any]) -> str:
    w = sd.get("stem.stem.0.weight")
    if not isinstance(w, torch.Tensor):
        raise VSViGLoadError("cannot infer the VSViG variant: missing key stem.stem.0.weight")
    for name, chans in VARIANTS.items():
        if w.shape[0] == chans[0]:
            return name
    raise VSViGLoadError(f"cannot infer the VSViG variant: stem.stem.0.weight has {w.shape[0]} output "
                         f"channels, expected one of {[c[0] for c in VARIANTS.values()]}")


def _build_and_load(sd: Mapping[str, Any], variant: str, graph_mode: str, orders: Any,
                    metadata: Mapping[str, Any], device: str | torch.device) -> VSViG:
    model = VSViG(variant, graph_mode, orders, metadata)  # type: ignore[arg-type]
    check_state_dict(model, sd)
    model.load_state_dict(sd, strict=True)
    return model.to(device).eval()


def load_vsvig(source: str | Path | Mapping[str, Any], *, variant: Variant | None = None,
               graph_mode: GraphMode | None = None,
               partition_order: torch.Tensor | Sequence[Sequence[int]] | str | Path | None = None,
               device: str | torch.device = "cpu") -> VSViG:
    """Load an official raw state_dict (.pth) or a ward checkpoint into an eval-mode VSViG.

    Official files: the variant is inferred from shapes, ``graph_mode`` defaults to ``"official"``
    and the order file must be passed or lie next to the weights as ``dy_point_order.pt``.
    Ward checkpoints carry variant, graph mode, joint layout and partition order in their metadata;
    explicit arguments override them. Every mismatch is reported at once; nothing loads half a model.
    """
    src_path: Path | None = None
    if isinstance(source, (str, Path)):
        src_path = Path(source)
        if not src_path.is_file():
            raise FileNotFoundError(f"VSViG weights not found: {src_path}")
        try:
            data = torch.load(src_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated download, HTML page, LFS pointer, foreign pickle...
            raise VSViGLoadError(f"cannot read VSViG weights {src_path}: {type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''} (re-download the file; "
                                 "`ward models verify` checks official files)") from exc
    elif isinstance(source, Mapping):
        data = source
    else:
        raise ValueError(f"source must be a path or a loaded dict, got {type(source).__name__}")
    if not isinstance(data, Mapping):
        raise VSViGLoadError(f"{src_path or 'source'} holds a {type(data).__name__}, not a state_dict or checkpoint")
    if isinstance(partition_order, (str, Path)):
        partition_order = load_partition_orders(partition_order)

    if data.get("format") == CHECKPOINT_FORMAT:
        meta = dict(data.get("metadata") or {})
        sd = data.get("state_dict")
        if not isinstance(sd, Mapping):
            raise VSViGLoadError("ward checkpoint has no 'state_dict' mapping")
        layout = meta.get("joint_layout")
        if layout is None or list(layout) != list(VSVIG_15):
            raise VSViGLoadError(f"checkpoint joint_layout {layout!r} differs from ward.core.keypoints.VSVIG_15 "
                                 f"{list(VSVIG_15)}; re-export the model in the canonical layout")
        v = variant or meta.get("variant") or _infer_variant(sd)
        if meta.get("variant") not in (None, v):
            raise VSViGLoadError(f"checkpoint is VSViG-{meta['variant']} but variant={v!r} was requested")
        mode = graph_mode or meta.get("graph_mode") or "paper"
        orders = partition_order if partition_order is not None else meta.get("partition_order")
        if orders is None:
            raise VSViGLoadError("ward checkpoint metadata has no partition_order; pass partition_order=")
        return _build_and_load(_strip_prefix(sd), v, mode, orders, meta, device)

    if "format" in data:
        raise VSViGLoadError(f"unknown checkpoint format {data['format']!r}; expected {CHECKPOINT_FORMAT!r}")
    sd = data["state_dict"] if isinstance(data.get("state_dict"), Mapping) else data
    sd = _strip_prefix(sd)
    v = variant or _infer_variant(sd)
    if partition_order is None:
        guess = (src_path.parent if src_path else Path.cwd()) / ORDER_FILE_NAME
        if not guess.is_file():
            raise FileNotFoundError(
                f"official VSViG weights need the partition order file {ORDER_FILE_NAME}: none was given "
                f"and {guess} does not exist. Put the official {ORDER_FILE_NAME} next to the weights or pass "
                "partition_order=<path>.")
        partition_order = load_partition_orders(guess)
    meta = {"source": str(src_path) if src_path else None, "trained_on": "official release",
            "notes": "official VSViG weights"}
    return _build_and_load(sd, v, graph_mode or "official", partition_order, meta, device)


def save_vsvig_checkpoint(model: VSViG, path: str | Path, **metadata: Any) -> Path:
    """Write a ward checkpoint (format ``ward.vsvig/1``) with the model's state and metadata.

    ``metadata`` extends ``model.metadata`` (e.g. trained_on=..., notes=...); variant, graph mode,
    joint layout, partition order and created_utc are filled in from the model.
    """
    for key in ("variant", "graph_mode"):
        if key in metadata and metadata[key] != getattr(model, key):
            raise ValueError(f"metadata {key}={metadata[key]!r} contradicts the model's {getattr(model, key)!r}")
    if "joint_layout" in metadata and list(metadata["joint_layout"]) != list(VSVIG_15):
        raise ValueError("joint_layout must equal ward.core.keypoints.VSVIG_15")
    meta: dict[str, Any] = {"trained_on": None, "notes": ""}
    meta.update({k: v for k, v in model.metadata.items() if k not in ("source",)})
    meta.update(metadata)
    meta.update(variant=model.variant, graph_mode=model.graph_mode, joint_layout=list(VSVIG_15),
                partition_order=model.partition_order.clone())
    meta.setdefault("created_utc", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": CHECKPOINT_FORMAT, "state_dict": state, "metadata": meta}, path)
    return path


def __getattr__(name: str) -> Any:
    """``load_vsvig_scorer`` / ``VSViGScorer`` live in :mod:`ward.vision.vsvig_engine` (imported lazily)."""
    if name in ("load_vsvig_scorer", "VSViGScorer"):
        from ward.vision import vsvig_engine  # noqa: PLC0415

        return getattr(vsvig_engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
