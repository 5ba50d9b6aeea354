"""The pruner registry: one name per pruning method, in the style of timm's ``_registry.py``.

Each method module registers a builder with :func:`register_pruner`; :func:`build_mask` builds a
:class:`pruning.mask.Mask` by name and :func:`list_pruners` lists the names (the CLI's ``choices`` come
from it)::

    from pruning import build_mask, list_pruners
    mask = build_mask("magnitude", model, sparsity=0.5)
    mask = build_mask("cast", model, pattern="2:4", calibration_images=images)

A builder is called as ``builder(model, **options)`` with keyword options drawn from one vocabulary:
``sparsity`` (unstructured methods), ``pattern`` (k:n methods), ``scope``, ``compat``, ``train_data``
(``(images, labels)``), ``calibration_images`` with ``calibration_source``, ``cache`` (an MP spectral
cache), ``steps`` / ``batch_size`` (the training phases' budget), ``seed``.  An alias names a pruner
with some options fixed (``magnitude-layerwise`` = ``magnitude`` with ``scope="layerwise"``).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from pruning.errors import PruningParameterError

__all__ = ["PrunerSpec", "register_pruner", "list_pruners", "pruner_spec", "build_mask"]

#: What a pruner needs besides the model: nothing, labelled training data, or calibration images.
DataNeed = Literal["none", "train", "calibration"]


@dataclass(frozen=True)
class PrunerSpec:
    """A registered pruner: its builder, what it takes and needs, and the options an alias fixes."""

    name: str
    builder: Callable[..., Any]
    summary: str
    takes: Literal["sparsity", "pattern"]
    needs: Callable[[dict[str, Any]], DataNeed]
    fixed: dict[str, Any] = field(default_factory=dict)

    @property
    def options(self) -> tuple[str, ...]:
        """The keyword options the builder accepts (its keyword parameters after ``model``)."""
        params = list(inspect.signature(self.builder).parameters.values())[1:]
        return tuple(p.name for p in params)

    def accepted(self, **offered: Any) -> dict[str, Any]:
        """The offered options this pruner takes (``None`` values dropped): what a caller holding many passes on."""
        return {k: v for k, v in offered.items() if k in self.options and v is not None}

    def data_need(self, **options: Any) -> DataNeed:
        """What data :func:`build_mask` must be given for these options (e.g. ``rmt`` needs none with
        ``compat="reference"``)."""
        return self.needs({**self.fixed, **options})


_PRUNERS: dict[str, PrunerSpec] = {}


def register_pruner(
    name: str, *, summary: str, takes: Literal["sparsity", "pattern"] = "sparsity",
    needs: DataNeed | Callable[[dict[str, Any]], DataNeed] = "none", aliases: dict[str, dict[str, Any]] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``builder(model, **options) -> Mask`` under ``name`` (and each alias with its fixed
    options)."""
    need = needs if callable(needs) else (lambda _options, fixed=needs: fixed)

    def decorate(builder: Callable[..., Any]) -> Callable[..., Any]:
        for key, fixed in {name: {}, **(aliases or {})}.items():
            if key in _PRUNERS:
                raise PruningParameterError(f"pruner {key!r} is registered twice")
            _PRUNERS[key] = PrunerSpec(key, builder, summary, takes, need, dict(fixed))
        return builder

    return decorate


def list_pruners() -> list[str]:
    """Every registered pruner name and alias, sorted (``pruning/__init__`` imports :mod:`pruning.pruners`, which
    registers them)."""
    return sorted(_PRUNERS)


def pruner_spec(name: str) -> PrunerSpec:
    """The :class:`PrunerSpec` of ``name``; a typed error listing the known names otherwise."""
    if name not in _PRUNERS:
        raise PruningParameterError(f"unknown pruner {name!r}; known: {', '.join(sorted(_PRUNERS))}")
    return _PRUNERS[name]


def build_mask(name: str, model, **options: Any):
    """Build the :class:`pruning.mask.Mask` of pruner ``name`` for ``model`` (the model is never modified).

    Options not accepted by the pruner, or in conflict with an alias' fixed options, raise
    :class:`pruning.errors.PruningParameterError` naming them.
    """
    spec = pruner_spec(name)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise PruningParameterError(f"pruner {name!r}: unknown option(s) {unknown}; it takes {list(spec.options)}")
    clash = sorted(k for k in spec.fixed if k in options and options[k] != spec.fixed[k])
    if clash:
        raise PruningParameterError(f"pruner {name!r} fixes {clash} to {[spec.fixed[k] for k in clash]}")
    return spec.builder(model, **{**options, **spec.fixed})
