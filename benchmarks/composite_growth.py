"""How much of the remainder growth at depth is the box wrapping *between* consolidated maps (FINDINGS F25): float64
Jacobians of the residual halves of a ViT at one calibration image (``torch.func.jacrev``; estimates, not bounds).

For ``g`` in ``--groups``, the halves are multiplied in groups of ``g`` consecutive halves (from the logits back),
and the largest row sum of ``|H| |P_k| ... |P_1|`` is printed, ``H`` the head's Jacobian (final norm, pooling,
head), ``P`` the products of the groups: ``g = 1`` is a remainder passed half by half through entrywise bounds
(:func:`certs.intervals.consolidation.consolidate`), ``g = 2`` block by block
(:func:`~certs.intervals.consolidation.consolidate_block`), ``g = 2 * depth`` the exact first-order image.

    python benchmarks/composite_growth.py deep --groups 1 2 4 24
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.func import jacrev

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from verification.bridge.certify_folder import load_audit_sets  # noqa: E402
from verification.bridge.vit_views import audit_copy  # noqa: E402
from verification.models.model_source import load_model  # noqa: E402


def half_jacobians(model: torch.nn.Module, image: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The ``(N d) x (N d)`` Jacobians of the residual halves in order, at the path of ``image``, and the head's."""
    x = model.norm_pre(model._pos_embed(model.patch_embed(image)))[0]
    shape = x.shape
    jacobians = []
    for block in model.blocks:
        for half in (lambda t, b=block: t + b.ls1(b.attn(b.norm1(t))), lambda t, b=block: t + b.ls2(b.mlp(b.norm2(t)))):
            flat = x.reshape(-1)
            jacobians.append(jacrev(lambda v: half(v.reshape(shape)[None])[0].reshape(-1))(flat).detach())
            x = half(x[None])[0].detach()
    head = jacrev(lambda v: model.forward_head(model.norm(v.reshape(shape)[None]))[0])(x.reshape(-1)).detach()
    return jacobians, head


def wrapped_row_sum(jacobians: list[torch.Tensor], head: torch.Tensor, group: int) -> float:
    """``max_i sum_j (|H| |P_k| ... |P_1|)_ij`` with ``P`` the products of ``group`` consecutive halves."""
    rows, end = head.abs(), len(jacobians)
    while end > 0:
        start = max(0, end - group)
        product = jacobians[end - 1]
        for k in range(end - 2, start - 1, -1):
            product = product @ jacobians[k]
        rows, end = rows @ product.abs(), start
    return float(rows.sum(1).max())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="default, deep, or a model source of `mpcert certify --model`")
    parser.add_argument("--image", type=int, default=0, help="calibration image (default: %(default)s)")
    parser.add_argument("--groups", type=int, nargs="+", default=[1, 2, 4, 8])
    args = parser.parse_args(argv)
    model = audit_copy(load_model(args.model, runnable=True, argument="model").model)
    for block in model.blocks:
        block.attn.fused_attn = False
    image = load_audit_sets("default", args.image + 1, 0, 0).calibration[0].double()[args.image:args.image + 1]
    with torch.enable_grad():
        jacobians, head = half_jacobians(model, image)
    print("| halves per group | max row sum of the wrapped product |\n|---|---|")
    for group in args.groups:
        print(f"| {group} | {wrapped_row_sum(jacobians, head, group):.3g} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
