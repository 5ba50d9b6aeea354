"""Masks as first-class objects: keep-tensors, pattern, input permutations and provenance.

A :class:`Mask` holds, per layer (module name), a boolean keep-tensor of the weight's shape, the
pattern (``None`` = unstructured, or a :class:`~pruning.kn_patterns.KNPattern` along the input
axis), optional input-channel permutations, and a :class:`Provenance`.  Every pruning method (magnitude,
classical RMT, SEB, SER, Hybrid, CAST) returns one; ``certs`` reads it as a mapping from
layer name to keep-tensor.

Permutations (ALGORITHMS.md 7.5) never become hidden forward hooks.  Keep-tensors are stored in the
layer's *original* column order, so ``apply`` is a plain elementwise product and the model's
function needs no input pre-transform; the permutation ``pi`` (length ``C_in``, input channels)
only says in which order the k:n groups are formed: ``keep2d[:, flat(pi)]`` has exactly ``k`` per
group, where ``flat(pi)[c t + tau] = pi[c] t + tau`` for conv taps ``t = k_h k_w`` (0.2).  It is
saved with the mask and re-applied by :meth:`Mask.load`; a 2:4 kernel consumes it explicitly
(``pruning.packed24.SparseLinear24`` gathers ``x[..., pi]``, a visible buffer of that module).

File format (:meth:`Mask.save`): one safetensors file; tensors ``keep/<layer>`` (bool, weight shape)
and ``perm/<layer>`` (int64); JSON metadata under the header key ``"mpcert_mask"``
(``format_version``, ``pattern``, ``group_axis``, ``provenance``).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from .errors import InvalidMaskError, MaskMismatchError, PruningError, IneligibleLayerError
from .kn_patterns import KNPattern, check_kn_groups
from .target_layers import SUPPORTED_LAYER_TYPES, prunable_layers

__all__ = ["Provenance", "Mask", "SparsityReport", "sparsity_report", "weight_sparsity", "restoration_source",
           "flat_column_permutation", "binary_keep", "integer_permutation", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_METADATA_KEY = "mpcert_mask"


@dataclass(frozen=True)
class Provenance:
    """How a mask was made: method, every option (incl. compat switches), target sparsity, data, seed."""

    method: str
    options: Mapping[str, Any] = field(default_factory=dict)
    sparsity: float | None = None
    calibration_source: str | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "options": dict(self.options),
            "sparsity": self.sparsity,
            "calibration_source": self.calibration_source,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class SparsityReport:
    """Pruned fraction per layer and over all layers: ``zeros / entries`` (ALGORITHMS.md 0.2)."""

    per_layer: Mapping[str, float]
    zeros: int
    total: int

    @property
    def global_sparsity(self) -> float:
        return self.zeros / self.total if self.total else 0.0


def sparsity_report(pruned: Mapping[str, torch.Tensor]) -> SparsityReport:
    """Sparsity from boolean "is pruned / is zero" tensors per layer."""
    per_layer = {name: float(t.float().mean()) for name, t in pruned.items()}
    zeros = sum(int(t.sum()) for t in pruned.values())
    total = sum(t.numel() for t in pruned.values())
    return SparsityReport(MappingProxyType(per_layer), zeros, total)


def weight_sparsity(model: nn.Module, layers: Mapping[str, nn.Module] | None = None) -> SparsityReport:
    """Achieved sparsity of the actual weights: exactly-zero entries over the target layers (0.2)."""
    layers = prunable_layers(model) if layers is None else layers
    return sparsity_report({name: m.weight.detach() == 0 for name, m in layers.items()})


def restoration_source(w_src: torch.Tensor, w_dense: torch.Tensor | None) -> torch.Tensor:
    """Source tuple of free restoration (ALGORITHMS.md 7.3): ``u = W_src`` where nonzero, else ``W_dense``."""
    if w_dense is None:
        return w_src
    return torch.where(w_src != 0, w_src, w_dense.to(w_src.dtype))


def flat_column_permutation(channel_perm: torch.Tensor, taps: int) -> torch.Tensor:
    """Column permutation of the flattened fan-in for a channel permutation (``taps = k_h k_w``, 7.5)."""
    return (channel_perm[:, None] * taps + torch.arange(taps)).reshape(-1)


def _as_cpu_tensor(name: str, value: Any, what: str) -> torch.Tensor:
    try:
        return torch.as_tensor(value).detach().to("cpu")
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InvalidMaskError(f"{name}: {what} is not a tensor ({type(value).__name__}: {exc})") from exc


def binary_keep(name: str, keep: Any) -> torch.Tensor:
    """The boolean keep-tensor of layer ``name`` (``True`` = kept, ALGORITHMS.md 0.2).

    ``keep`` must be bool, or an integer / floating tensor whose entries are exactly 0 or 1.  Any
    other entry (a soft 0.5, -1, 2, NaN) or a complex dtype raises :class:`InvalidMaskError`
    naming the layer: ``.bool()`` would read it as "kept" and the mask would silently prune nothing.
    """
    tensor = _as_cpu_tensor(name, keep, "keep-tensor")
    if tensor.dtype == torch.bool:
        return tensor
    if tensor.is_complex():
        raise InvalidMaskError(f"{name}: keep-tensor has complex dtype {tensor.dtype}; "
                               "expected bool or exactly 0/1 entries")
    binary = (tensor == 0) | (tensor == 1)
    if not bool(binary.all()):
        bad = tensor[~binary]
        raise InvalidMaskError(
            f"{name}: keep-tensor ({tensor.dtype}) must hold only 0 and 1 (or be bool); "
            f"{bad.numel()} entries do not, e.g. {bad[0].item()!r}"
        )
    return tensor != 0


def integer_permutation(name: str, perm: Any) -> torch.Tensor:
    """The input-channel permutation of layer ``name`` as int64; a bool, float or complex tensor
    raises :class:`InvalidMaskError` (a float permutation would be truncated silently)."""
    tensor = _as_cpu_tensor(name, perm, "permutation")
    if tensor.dtype == torch.bool or tensor.is_floating_point() or tensor.is_complex():
        raise InvalidMaskError(f"{name}: permutation must be an integer tensor, got dtype {tensor.dtype}")
    return tensor.long()


@dataclass(frozen=True)
class Mask:
    """Per-layer boolean keep-tensors with pattern, input permutations and provenance.

    ``keep[name]`` has the shape of that layer's weight; ``True`` = kept.  ``pattern`` is ``None``
    for unstructured masks.  ``permutations[name]`` (optional) is a permutation of the layer's input
    channels defining the k:n group layout (module docstring).  Keep-tensors are checked by
    :func:`binary_keep` and permutations by :func:`integer_permutation` (:class:`InvalidMaskError`).
    """

    keep: Mapping[str, torch.Tensor]
    provenance: Provenance
    pattern: KNPattern | None = None
    permutations: Mapping[str, torch.Tensor] = field(default_factory=dict)
    group_axis: str = "input"

    def __post_init__(self) -> None:
        keep = {name: binary_keep(name, t) for name, t in self.keep.items()}
        perms = {name: integer_permutation(name, p) for name, p in self.permutations.items()}
        extra = sorted(set(perms) - set(keep))
        if extra:
            raise MaskMismatchError(f"permutations: layers {extra} have a permutation but no keep-tensor")
        if self.group_axis != "input":
            raise PruningError(f"group_axis: only 'input' is supported, got {self.group_axis!r}")
        object.__setattr__(self, "keep", MappingProxyType(keep))
        object.__setattr__(self, "permutations", MappingProxyType(perms))

    # -- reading --------------------------------------------------------------------------------
    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(self.keep)

    @property
    def pattern_name(self) -> str:
        return "unstructured" if self.pattern is None else str(self.pattern)

    def grouped_keep(self, name: str) -> torch.Tensor:
        """``keep`` of a layer as ``(d_out, fan_in)`` with columns in group order (permuted if any)."""
        keep2d = self.keep[name].reshape(self.keep[name].shape[0], -1)
        if name in self.permutations:
            taps = keep2d.shape[1] // self.permutations[name].numel()
            keep2d = keep2d[:, flat_column_permutation(self.permutations[name], taps)]
        return keep2d

    def sparsity_report(self) -> SparsityReport:
        """Per-layer and global fraction of pruned (``False``) entries of the mask."""
        return sparsity_report({name: ~t for name, t in self.keep.items()})

    # -- checking -------------------------------------------------------------------------------
    def validate(self, model: nn.Module) -> None:
        """Check the mask against ``model``: layers exist and are supported, shapes, permutations, k:n.

        Raises :class:`MaskMismatchError` / :class:`IneligibleLayerError` / :class:`PatternError`
        naming the layer.
        """
        modules = dict(model.named_modules())
        for name, keep in self.keep.items():
            module = modules.get(name)
            if module is None:
                raise MaskMismatchError(f"{name}: the mask names a layer the model does not have")
            if not isinstance(module, SUPPORTED_LAYER_TYPES):
                raise IneligibleLayerError(f"{name}: {type(module).__name__} is not an nn.Linear or nn.Conv2d")
            if tuple(keep.shape) != tuple(module.weight.shape):
                raise MaskMismatchError(
                    f"{name}: keep-tensor shape {tuple(keep.shape)} != weight shape {tuple(module.weight.shape)}"
                )
            perm = self.permutations.get(name)
            if perm is not None:
                c_in = module.weight.shape[1]
                if (perm.ndim != 1 or perm.numel() != c_in
                        or not torch.equal(torch.sort(perm).values, torch.arange(c_in))):
                    raise MaskMismatchError(f"{name}: permutation is not a permutation of its {c_in} input channels")
            if self.pattern is not None:
                check_kn_groups(self.grouped_keep(name), self.pattern, name)

    # -- using ----------------------------------------------------------------------------------
    def apply(self, model: nn.Module, *, inplace: bool = False, restore_from: nn.Module | None = None) -> nn.Module:
        """Return a deep copy of ``model`` with ``W <- keep * W`` on every masked layer.

        ``inplace=True`` edits ``model`` itself.  ``restore_from`` (the dense model) turns on free
        restoration (ALGORITHMS.md 7.3): kept slots whose weight is exactly zero take the dense value,
        ``W <- keep * u`` with ``u = W`` where ``W != 0`` else ``W_dense``.
        """
        self.validate(model)
        if restore_from is not None:
            self.validate(restore_from)
        target = model if inplace else copy.deepcopy(model)
        modules = dict(target.named_modules())
        dense = dict(restore_from.named_modules()) if restore_from is not None else {}
        with torch.no_grad():
            for name, keep in self.keep.items():
                weight = modules[name].weight
                w_dense = dense[name].weight.detach().to(weight.device) if name in dense else None
                u = restoration_source(weight.detach(), w_dense)
                weight.copy_(torch.where(keep.to(weight.device), u, torch.zeros((), dtype=u.dtype, device=u.device)))
        return target

    # -- storage --------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the mask to one safetensors file (format in the module docstring)."""
        tensors = {f"keep/{n}": t.contiguous() for n, t in self.keep.items()}
        tensors |= {f"perm/{n}": p.contiguous() for n, p in self.permutations.items()}
        meta = {
            "format_version": FORMAT_VERSION,
            "pattern": self.pattern_name,
            "group_axis": self.group_axis,
            "layers": list(self.keep),
            "provenance": self.provenance.to_json(),
        }
        path = Path(path)
        save_file(tensors, str(path), metadata={_METADATA_KEY: json.dumps(meta)})
        return path

    @classmethod
    def load(cls, path: str | Path, model: nn.Module | None = None) -> "Mask":
        """Read a mask written by :meth:`save`; with ``model``, also :meth:`validate` against it.

        The metadata must be the JSON object of :meth:`save` and name exactly the file's keep-tensors;
        anything else (invalid JSON, a missing key, a listed layer without tensor, a tensor not listed,
        an unknown provenance field) raises :class:`InvalidMaskError` naming the file.
        """
        path = Path(path)
        try:
            with safe_open(str(path), framework="pt") as handle:
                raw = (handle.metadata() or {}).get(_METADATA_KEY)
                if raw is None:
                    raise PruningError(f"{path}: not an mpcert mask file (no {_METADATA_KEY!r} metadata)")
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        except (SafetensorError, OSError) as exc:
            raise PruningError(f"{path}: cannot read mask file ({exc})") from exc
        meta = _read_metadata(path, raw)
        if meta["format_version"] != FORMAT_VERSION:
            raise PruningError(f"{path}: unsupported mask format_version {meta['format_version']!r}")
        _check_tensor_keys(path, meta["layers"], tensors)
        try:
            pattern = None if meta["pattern"] == "unstructured" else KNPattern.parse(meta["pattern"])
            provenance = Provenance(**meta["provenance"])
        except PruningError as exc:
            raise InvalidMaskError(f"{path}: metadata {exc}") from exc
        except TypeError as exc:
            raise InvalidMaskError(f"{path}: metadata 'provenance' has unknown or missing fields ({exc})") from exc
        mask = cls(
            keep={n: tensors[f"keep/{n}"] for n in meta["layers"]},
            permutations={k[len("perm/"):]: v for k, v in tensors.items() if k.startswith("perm/")},
            pattern=pattern,
            group_axis=meta["group_axis"],
            provenance=provenance,
        )
        if model is not None:
            mask.validate(model)
        return mask


#: Keys of the mask-file metadata and the JSON type each must have (:meth:`Mask.save`).
_METADATA_FIELDS = {"format_version": int, "pattern": str, "group_axis": str, "layers": list, "provenance": dict}


def _read_metadata(path: Path, raw: str) -> dict[str, Any]:
    """The ``mpcert_mask`` metadata of ``path`` as a dict with every field of :data:`_METADATA_FIELDS`."""
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidMaskError(f"{path}: metadata {_METADATA_KEY!r} is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise InvalidMaskError(f"{path}: metadata {_METADATA_KEY!r} must be a JSON object, got {type(meta).__name__}")
    for key, kind in _METADATA_FIELDS.items():
        if key not in meta:
            raise InvalidMaskError(f"{path}: metadata has no {key!r}")
        if not isinstance(meta[key], kind) or isinstance(meta[key], bool):
            raise InvalidMaskError(f"{path}: metadata {key!r} must be a JSON {kind.__name__}, got {meta[key]!r}")
    if not all(isinstance(name, str) for name in meta["layers"]):
        raise InvalidMaskError(f"{path}: metadata 'layers' must list layer names (strings)")
    return meta


def _check_tensor_keys(path: Path, layers: list[str], tensors: Mapping[str, torch.Tensor]) -> None:
    """The file's tensors are exactly ``keep/<layer>`` for the listed ``layers`` plus optional ``perm/<layer>``."""
    missing = [name for name in layers if f"keep/{name}" not in tensors]
    if missing:
        raise InvalidMaskError(f"{path}: metadata lists layers {missing} with no keep-tensor in the file")
    listed = {f"keep/{name}" for name in layers}
    unlisted = sorted(key for key in tensors if key.startswith("keep/") and key not in listed)
    if unlisted:
        raise InvalidMaskError(f"{path}: keep-tensors {unlisted} are not listed in the metadata 'layers'")
    foreign = sorted(key for key in tensors if not key.startswith(("keep/", "perm/")))
    if foreign:
        raise InvalidMaskError(f"{path}: tensors {foreign} are neither keep/<layer> nor perm/<layer>")
