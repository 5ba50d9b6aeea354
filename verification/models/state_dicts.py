"""Reading state-dict files and loading them into a model strictly (one loader for every model source).

* :func:`read_state_dict` reads ``*.safetensors`` (``safetensors.torch.load_file``) or a torch
  pickle ``*.pt`` / ``*.pth`` with ``weights_only=True`` (never arbitrary code); a ``.pt`` may wrap
  the mapping under ``"state_dict"`` or ``"model"``.
* :func:`load_state_dict_strictly` refuses any difference between the file and the model — missing
  keys, unexpected keys, wrongly shaped tensors — and names them all in one message, before
  anything is copied into the model.

Both raise the typed error class they are given (default :class:`verification.errors.ModelSourceError`),
so :mod:`verification.models.default_model` raises its own :class:`DefaultModelError` through them.
"""

from __future__ import annotations

from pathlib import Path

import torch

from verification.errors import ModelSourceError

__all__ = ["read_state_dict", "state_dict_mismatches", "load_state_dict_strictly", "shorten_keys", "MAX_KEYS_SHOWN"]

#: Longest list of keys quoted in one error message (the count of the rest is given).
MAX_KEYS_SHOWN = 8


def read_state_dict(
    path: str | Path, *, what: str = "state-dict file", error: type[ModelSourceError] = ModelSourceError
) -> dict[str, torch.Tensor]:
    """The mapping ``name -> tensor`` stored in ``path`` (``.safetensors``, or a ``weights_only`` torch file).

    Raises ``error`` naming ``what`` and ``path`` when the file does not exist, cannot be read, or
    does not hold a mapping from string keys to tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} {str(path)!r} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickle refused by weights_only, ...
        raise error(f"cannot read {what} {str(path)!r} as a state dict: {exc}") from exc
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise error(f"{what} {str(path)!r} does not contain a state dict (a mapping from names to tensors)")
    return state


def shorten_keys(keys: list[str]) -> str:
    """At most :data:`MAX_KEYS_SHOWN` of ``keys``, comma-separated, with the count of all when cut."""
    shown = ", ".join(keys[:MAX_KEYS_SHOWN])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > MAX_KEYS_SHOWN else "")


def state_dict_mismatches(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Every difference between ``state`` and ``model.state_dict()``: one line per kind, empty when they match.

    The kinds are ``missing keys`` (in the model, not in ``state``), ``unexpected keys`` (in
    ``state`` only), ``shape mismatches`` (``key (file shape) != (model shape)``) and ``unsupported
    dtypes`` (``key file dtype != model dtype`` where the kinds differ: a complex, integer or bool tensor
    for a floating one, or the reverse; ``load_state_dict`` would cast it, dropping imaginary parts).
    A floating tensor of another precision is accepted (cast on copy).
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(
        f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
        for k in set(state) & set(expected)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    wrong_dtype = sorted(
        f"{k} {str(state[k].dtype).removeprefix('torch.')} != {str(expected[k].dtype).removeprefix('torch.')}"
        for k in set(state) & set(expected)
        if _dtype_kind(state[k]) != _dtype_kind(expected[k])
    )
    return [
        f"{title}: {shorten_keys(keys)}"
        for title, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                            ("shape mismatches", wrong_shape), ("unsupported dtypes", wrong_dtype))
        if keys
    ]


def _dtype_kind(tensor: torch.Tensor) -> str:
    if tensor.is_complex():
        return "complex"
    if tensor.is_floating_point():
        return "floating"
    return "bool" if tensor.dtype == torch.bool else "integer"


def load_state_dict_strictly(
    model: torch.nn.Module,
    state: dict[str, torch.Tensor],
    *,
    label: str,
    target: str,
    error: type[ModelSourceError] = ModelSourceError,
) -> None:
    """Copy ``state`` into ``model`` if and only if keys and shapes match exactly.

    Otherwise raise ``error("{label} do not match {target}: missing keys ...; unexpected keys ...;
    shape mismatches ...; unsupported dtypes ...")`` and leave ``model`` untouched.  Tensors with NaN
    or Inf entries are refused too (``error("{label} have NaN or Inf entries: ...")``): every later step
    (fit, prune, certify) would fail on them far from the file that caused it.
    """
    problems = state_dict_mismatches(model, state)
    if problems:
        raise error(f"{label} do not match {target}: " + "; ".join(problems))
    non_finite = sorted(k for k, v in state.items()
                        if (v.is_floating_point() or v.is_complex()) and not bool(torch.isfinite(v).all()))
    if non_finite:
        raise error(f"{label} have NaN or Inf entries: {shorten_keys(non_finite)}")
    model.load_state_dict(state, strict=True)
