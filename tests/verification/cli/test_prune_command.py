"""``mpcert prune`` (verification/cli/prune.py): masks written by Mask.save, typed errors -> exit 2."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import save_file

from pruning.mask import Mask
from verification.cli import main
from verification.models.default_model import build_default_model
from verification.models.model_source import weights_module


def test_default_magnitude_mask_loads_and_validates(tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    assert main(["prune", "default", "--method", "magnitude", "--sparsity", "0.5", "--out", str(out)]) == 0
    model = build_default_model()
    mask = Mask.load(out, model)
    report = mask.sparsity_report()
    assert report.zeros == math.floor(0.5 * report.total)
    assert mask.provenance.method == "magnitude" and mask.provenance.seed == 0
    assert "default Fashion-MNIST ViT" in mask.provenance.options["source"]
    assert "mask written to" in capsys.readouterr().out
    # an existing --out is refused without --force (exit 2), accepted with it
    assert main(["prune", "default", "--method", "magnitude", "--sparsity", "0.5", "--out", str(out)]) == 2
    assert main(["prune", "default", "--method", "seb", "--sparsity", "0.3", "--out", str(out), "--force"]) == 0
    assert Mask.load(out, model).provenance.method == "seb"


def test_default_ser_with_training_data(tmp_path):
    out = tmp_path / "ser.safetensors"
    args = ["prune", "default", "--method", "ser", "--sparsity", "0.3", "--steps", "1", "--train-images", "20",
            "--seed", "3", "--out", str(out)]
    assert main(args) == 0
    mask = Mask.load(out, build_default_model())
    assert mask.sparsity_report().zeros == math.floor(0.3 * mask.sparsity_report().total)
    assert "20 class-balanced images, seed 3" in mask.provenance.calibration_source
    assert mask.provenance.options["selection"]["max_steps"] == 1


@pytest.mark.parametrize("args, word", [
    (["--method", "magnitude", "--sparsity", "1.5"], "--sparsity"),
    (["--method", "seb", "--sparsity", "nan"], "--sparsity"),
    (["--method", "seb"], "--sparsity"),
    (["--method", "magnitude", "--sparsity", "0.5", "--pattern", "2:4"], "--pattern"),
    (["--method", "cast", "--sparsity", "0.5"], "--sparsity"),
])
def test_bad_arguments_exit_2_naming_the_argument(tmp_path, capsys, args, word):
    assert main(["prune", "default", *args, "--out", str(tmp_path / "x.safetensors")]) == 2
    assert word in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()


def test_unknown_method_is_an_argparse_error(tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["prune", "default", "--method", "random", "--sparsity", "0.5", "--out", str(tmp_path / "x")])
    assert exc.value.code == 2


def state_dict(tmp_path, nan: bool = False):
    torch.manual_seed(0)
    state = {"enc.fc1.weight": torch.randn(16, 8), "enc.fc1.bias": torch.randn(16),
             "enc.conv.weight": torch.randn(6, 4, 3, 3), "head.weight": torch.randn(4, 16),
             "norm.weight": torch.ones(16)}
    if nan:
        state["head.weight"][1, 2] = float("nan")
    path = tmp_path / ("nan.safetensors" if nan else "w.safetensors")
    save_file(state, str(path))
    return path, state


def test_state_dict_source_data_free_methods(tmp_path):
    path, state = state_dict(tmp_path)
    out = tmp_path / "m.safetensors"
    assert main(["prune", str(path), "--method", "seb", "--sparsity", "0.4", "--out", str(out)]) == 0
    shell = weights_module({k: v for k, v in state.items() if k.endswith("weight") and v.ndim in (2, 4)})
    mask = Mask.load(out, shell)
    assert set(mask.keep) == {"enc.fc1", "enc.conv", "head"}
    assert mask.sparsity_report().zeros == math.floor(0.4 * mask.sparsity_report().total)


def test_state_dict_errors(tmp_path, capsys):
    bad, _ = state_dict(tmp_path, nan=True)
    assert main(["prune", str(bad), "--method", "magnitude", "--sparsity", "0.5", "--out", str(tmp_path / "a")]) == 2
    assert "head" in capsys.readouterr().err  # names the layer with NaN weights
    good, _ = state_dict(tmp_path)
    assert main(["prune", str(good), "--method", "ser", "--sparsity", "0.5", "--out", str(tmp_path / "b")]) == 2
    assert "runnable" in capsys.readouterr().err
    assert main(["prune", str(tmp_path / "missing.pt"), "--method", "seb", "--sparsity", "0.5",
                 "--out", str(tmp_path / "c")]) == 2


def test_classical_rmt_compat_switch(tmp_path, capsys):
    """C6: the paper's post-pruning fine-tuning needs a runnable model; ``--compat reference`` is data-free."""
    path, state = state_dict(tmp_path)
    out = tmp_path / "rmt.safetensors"
    assert main(["prune", str(path), "--method", "rmt", "--sparsity", "0.3", "--out", str(out)]) == 2
    assert "--compat reference" in capsys.readouterr().err
    assert main(["prune", str(path), "--method", "rmt", "--sparsity", "0.3", "--compat", "reference",
                 "--out", str(out)]) == 0
    shell = weights_module({k: v for k, v in state.items() if k.endswith("weight") and v.ndim in (2, 4)})
    mask = Mask.load(out, shell)
    assert mask.provenance.method == "classical_rmt"
    assert mask.provenance.options.get("compat") == "reference"


def test_seb_mask_is_computed_on_the_weights_it_is_applied_to(tmp_path):
    """The CLI's SEB skips the Haar SV preprocessing (it rewrites weights a mask file cannot carry)."""
    out = tmp_path / "seb.safetensors"
    assert main(["prune", "default", "--method", "seb", "--sparsity", "0.3", "--out", str(out)]) == 0
    mask = Mask.load(out, build_default_model())
    assert mask.provenance.options["sv_preprocess"] is None


def test_packed_checkpoint_loads_as_the_24_executing_model(tmp_path, capsys):
    """``--packed-out``: the checkpoint loads (load_24) as SparseLinear24 layers computing the masked model."""
    from pruning.packed24 import SparseLinear24, load_24
    from verification.models.state_dicts import read_state_dict

    out, packed = tmp_path / "m.safetensors", tmp_path / "packed.safetensors"
    assert main(["prune", "default", "--method", "magnitude", "--pattern", "2:4", "--out", str(out),
                 "--packed-out", str(packed)]) == 0
    assert "2:4 checkpoint written to" in capsys.readouterr().out
    model = build_default_model()
    mask = Mask.load(out, model)
    loaded = load_24(build_default_model(), read_state_dict(packed))
    sparse_layers = {name for name, m in loaded.named_modules() if isinstance(m, SparseLinear24)}
    assert sparse_layers == {name for name in mask.keep if isinstance(model.get_submodule(name), torch.nn.Linear)}
    assert sparse_layers  # the default ViT has 2:4-eligible Linears
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), mask.apply(model).eval()(x), rtol=1e-5, atol=1e-5)
    # refused: not a 2:4 mask, and an existing checkpoint without --force (nothing written in either case)
    assert main(["prune", "default", "--method", "magnitude", "--sparsity", "0.5", "--out", str(tmp_path / "u"),
                 "--packed-out", str(tmp_path / "u.safetensors")]) == 2
    assert "--packed-out: needs a 2:4 mask" in capsys.readouterr().err and not (tmp_path / "u").exists()
    assert main(["prune", "default", "--method", "cast", "--pattern", "4:8", "--out", str(tmp_path / "v"),
                 "--packed-out", str(packed), "--force"]) == 2
    assert main(["prune", "default", "--method", "magnitude", "--pattern", "2:4", "--out", str(tmp_path / "w"),
                 "--packed-out", str(packed)]) == 2
    assert "--packed-out" in capsys.readouterr().err and not (tmp_path / "w").exists()
