"""The FID InceptionV3 (gdl_jax.eval.inception) against pytorch-fid's own network, and the errors
its weights file gets. The real weights cannot be downloaded here: both sides take the same
seeded random state dict (tests/_inception_reference.py made the reference with pytorch-fid)."""

import importlib.util
import sys

import jax
import numpy as np
import pytest
from _inception_reference import REFERENCE, random_fid_state_dict

from gdl_jax.errors import ConfigError
from gdl_jax.eval import inception


@pytest.fixture(scope="module")
def state():
    return random_fid_state_dict()


@pytest.fixture(scope="module")
def weights(state, tmp_path_factory):
    path = tmp_path_factory.mktemp("inception") / "fid_random.npz"
    np.savez(path, **state)
    return path


def test_features_match_pytorch_fid(weights):
    """Same weights, same images: pytorch-fid's InceptionV3 (resize to 299, x * 2 - 1, the FID
    network's pools) and ours give the same 2048 features. A pool that counts its padding, the
    torch BatchNorm epsilon (1e-5) or a missing input scaling each move them by 0.8 or more."""
    ref = np.load(REFERENCE)
    features = inception.InceptionFeatures(weights)
    with jax.default_matmul_precision("highest"):   # no TF32 or bf16 passes on accelerators
        got = features(ref["images"])
    assert got.shape == (2, 2048)
    np.testing.assert_allclose(got, ref["features"], rtol=1e-4, atol=1e-3)
    assert np.abs(ref["features"][0] - ref["features"][1]).max() > 0.1   # the two images differ
    variables = inception.variables_from_state_dict(np.load(weights))
    params = sum(leaf.size for leaf in jax.tree.leaves(variables["params"]))
    assert params == int(ref["torch_params"]) == 21_785_568
    assert "fid_random.npz" in features.name


def test_a_torch_state_dict_reads_as_the_npz(state, weights, tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "fid.pth"
    torch.save({k: torch.from_numpy(v) for k, v in state.items()}, path)
    from_pth = inception.variables_from_state_dict(inception.read_state_dict(path))
    from_npz = inception.variables_from_state_dict(inception.read_state_dict(weights))
    jax.tree.map(np.testing.assert_array_equal, from_pth, from_npz)


def test_bad_weights_get_a_one_line_error(state, tmp_path, monkeypatch):
    def check(path, match):
        with pytest.raises(ConfigError, match=match) as e:
            inception.load_variables(path)
        assert "\n" not in str(e.value)

    check(tmp_path / "none.npz", "no such file")
    (tmp_path / "w.h5").write_bytes(b"x")
    check(tmp_path / "w.h5", r"expected a .pth, .pt or .npz")
    (tmp_path / "cut.npz").write_bytes(b"PK\x03\x04 truncated")
    check(tmp_path / "cut.npz", "not a readable .npz")
    key = "Mixed_6b.branch7x7_2.conv.weight"
    np.savez(tmp_path / "missing.npz", **{k: v for k, v in state.items() if k != key})
    check(tmp_path / "missing.npz", f"weights missing.npz: no entry '{key}'")
    np.savez(tmp_path / "shape.npz", **{**state, key: state[key][:, :, :, :3]})
    check(tmp_path / "shape.npz", rf"'{key}' has shape \(128, 128, 1, 3\), the network needs \(128, 128, 1, 7\)")
    np.savez(tmp_path / "aux.npz", **state, **{"AuxLogits.fc.weight": np.zeros((1000, 768), np.float32)})
    check(tmp_path / "aux.npz", "1 entries the FID network does not have, e.g. 'AuxLogits.fc.weight'")
    (tmp_path / "w.pth").write_bytes(b"not a torch file")
    if importlib.util.find_spec("torch"):
        import torch

        check(tmp_path / "w.pth", "torch cannot read it")
        torch.save(torch.nn.Linear(2, 2), tmp_path / "model.pth")
        check(tmp_path / "model.pth", r"holds pickled objects, not a plain state dict \(save model.state_dict\(\)\)")
    monkeypatch.setitem(sys.modules, "torch", None)   # as without the optional torch
    check(tmp_path / "w.pth", r"reading a .pth needs torch \(pip install torch==2.13.0\)")


def test_trainers_check_the_weights_before_training(tmp_path):
    from conftest import tiny_gan_config

    from gdl_jax.tasks.gan import validate

    config = tiny_gan_config(tmp_path)
    config.inception_weights = str(tmp_path / "missing.pth")
    with pytest.raises(ConfigError, match="missing.pth: no such file"):
        validate(config)
