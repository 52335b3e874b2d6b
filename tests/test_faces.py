"""The faces VAE end to end on a tiny CelebA in the offline layout: streamed training, kill and
resume, the analysis figures, and gdl_jax.load."""

import json
import pathlib

import numpy as np
import pytest

import gdl_jax
from experiments.configs import vae_faces_offline
from gdl_jax import tasks
from gdl_jax.errors import CheckpointError, ConfigError, DataError
from gdl_jax.train.metrics import read_jsonl
from tests.test_celeba import ATTRS, write_celeba

FIGURES = ("fig_3_18_reconstructions.png", "fig_3_19_latent_histograms.png", "fig_3_20_new_faces.png",
           "fig_3_21_attribute_arithmetic.png", "fig_3_22_morphing.png", "curves.png")


@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory):
    return write_celeba(tmp_path_factory.mktemp("faces"), n=40)


def tiny_faces_config(data_dir):
    """The offline faces config shrunk to seconds: 16x16 faces, 3 stride-2 convs, z_dim 6."""
    c = vae_faces_offline.get_config()
    c.data.data_dir = str(data_dir)
    c.data.image_size = 16
    c.data.test_size = 8
    c.model.encoder.update(filters=(8, 8, 8), kernels=(3, 3, 3), strides=(2, 2, 2), z_dim=6)
    c.model.decoder.update(shape_before_flattening=(2, 2, 8), filters=(8, 8, 3), kernels=(3, 3, 3),
                           strides=(2, 2, 2))
    c.batch_size = 8
    c.num_epochs = 3
    c.steps_per_dispatch = 2
    c.log_every_steps = 3
    c.checkpoint_every_steps = 5
    c.eval_batch_size = 8
    c.r_loss_factor = 100.0
    c.analysis.attributes = ("Smiling", "Male")
    c.analysis.attribute_examples = 32
    c.analysis.morph_pair = (1, 2)
    c.analysis.morph_steps = 5
    return c


class Killed(Exception):
    pass


def _kill_at(step_to_die):
    def hook(step, state):
        if step >= step_to_die:
            raise Killed(step)
    return hook


def test_streamed_faces_run_kill_resume_and_load(faces_dir, tmp_path):
    config = tiny_faces_config(faces_dir)
    whole = tasks.train_and_evaluate(config, tmp_path / "whole")
    records = read_jsonl(tmp_path / "whole" / "metrics.jsonl")
    steps = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in steps] == list(range(1, 13))       # 32 train faces / 8 = 4 steps x 3 epochs
    assert {"reconstruction", "kl"} <= set(steps[0])
    assert whole["test_examples"] == 8
    assert len(whole["latent"]["ks_to_standard_normal"]) == 6
    assert set(whole["attribute_test_auc"]) == {"Smiling", "Male"}
    # rule 2 against the training faces searched (all 32 here), the held-out ones as baseline
    assert (whole["novelty"]["held_out_images"], whole["novelty"]["training_images_searched"]) == (8, 32)
    for name in FIGURES:
        assert (tmp_path / "whole" / name).stat().st_size > 0

    # killed mid-epoch (step 7 of 12; last checkpoint at 5), resumed: the same run
    with pytest.raises(Killed):
        tasks.train_and_evaluate(config, tmp_path / "killed", hooks=[_kill_at(7)])
    assert sorted(p.name for p in (tmp_path / "killed" / "checkpoints").iterdir()) == ["5"]
    resumed = tasks.train_and_evaluate(config, tmp_path / "killed")
    assert resumed == whole
    assert read_jsonl(tmp_path / "killed" / "metrics.jsonl") == records

    # gdl_jax.load round-trips the trained model
    model = gdl_jax.load(tmp_path / "whole")
    assert model.kind == "vae" and model.z_dim == 6 and model.image_shape == (16, 16, 3)
    assert model.attribute_names == tuple(ATTRS)
    images = (np.random.default_rng(0).uniform(size=(3, 16, 16, 3)) * 255).astype(np.uint8)
    z = model.encode(images)
    assert z.shape == (3, 6)
    np.testing.assert_allclose(model.encode(images[0]), z[0], rtol=1e-5, atol=1e-5)    # one HWC image
    np.testing.assert_allclose(model.encode(images / 255.0), z, rtol=1e-5, atol=1e-5)  # float input
    x = model.decode(z)
    assert x.shape == (3, 16, 16, 3)
    np.testing.assert_allclose(model.decode(z[0]), x[0], rtol=1e-5, atol=1e-6)   # one code: one image
    assert model.sample(4, seed=1).shape == (4, 16, 16, 3)
    np.testing.assert_array_equal(model.sample(4, seed=1), model.sample(4, seed=1))
    frames = model.morph(images[0], images[1], steps=5)
    assert frames.shape == (5, 16, 16, 3)
    np.testing.assert_allclose(frames[0], model.decode(z[0]), atol=1e-5)   # the endpoints are the
    np.testing.assert_allclose(frames[-1], model.decode(z[1]), atol=1e-5)  # decoded endpoints
    assert model.attribute_vector("Smiling").shape == (6,)
    mu, log_var = model.posterior(images)
    np.testing.assert_array_equal(mu, z)
    assert log_var.shape == (3, 6) and np.isfinite(log_var).all()

    # bad input: one-line errors that name the problem
    with pytest.raises(DataError, match=r"images must be one image of shape \(16, 16, 3\)"):
        model.encode(np.zeros((2, 28, 28, 1), np.uint8))
    with pytest.raises(DataError, match=r"float images must be finite and in \[0, 1\]"):
        model.encode(np.full((16, 16, 3), 2.0))
    with pytest.raises(DataError, match=r"z must be one latent vector of shape \(6,\)"):
        model.decode(np.zeros((2, 5)))
    with pytest.raises(DataError, match="unknown CelebA attribute 'Smile'; valid: Smiling, Male, Eyeglasses"):
        model.attribute_vector("Smile")
    with pytest.raises(CheckpointError, match="holds no gdl_jax run"):
        gdl_jax.load(tmp_path / "empty")


@pytest.mark.slow   # the analysis binary in a new process (the trainer runs the analysis in every test)
def test_the_analysis_binary_reruns_on_a_finished_run(faces_dir, tmp_path):
    """(Same seed, same numbers: in the kill-and-resume test above, a second run from scratch,
    killed and resumed, ends with the first run's exact results.)"""
    import subprocess
    import sys

    config = tiny_faces_config(faces_dir)
    config.num_epochs = 1
    tasks.train_and_evaluate(config, tmp_path / "a")
    (tmp_path / "a" / "fig_3_21_attribute_arithmetic.png").unlink()
    root = pathlib.Path(__file__).resolve().parents[1]
    overrides = [f"--config.data.data_dir={faces_dir}", "--config.data.image_size=16", "--config.data.test_size=8",
                 "--config.batch_size=8", "--config.checkpoint_every_steps=5", "--config.r_loss_factor=100",
                 "--config.eval_batch_size=8", "--config.analysis.attribute_examples=32",
                 "--config.model.encoder.filters=(8,8,8)", "--config.model.encoder.kernels=(3,3,3)",
                 "--config.model.encoder.strides=(2,2,2)", "--config.model.encoder.z_dim=6",
                 "--config.model.decoder.shape_before_flattening=(2,2,8)",
                 "--config.model.decoder.filters=(8,8,3)", "--config.model.decoder.kernels=(3,3,3)",
                 "--config.model.decoder.strides=(2,2,2)", "--config.analysis.morph_steps=5"]
    args = [sys.executable, "-m", "experiments.analyze_autoencoder",
            "--config=experiments/configs/vae_faces_offline.py", f"--workdir={tmp_path / 'a'}"] + overrides
    proc = subprocess.run(args + ["--config.analysis.attributes=('Eyeglasses',)"], capture_output=True, text=True,
                          timeout=300, cwd=root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "a" / "fig_3_21_attribute_arithmetic.png").stat().st_size > 0
    assert set(json.loads(proc.stdout)["attribute_test_auc"]) == {"Eyeglasses"}
    bad = subprocess.run(args + ["--config.analysis.attributes=('Smile',)"], capture_output=True, text=True,
                         timeout=300, cwd=root)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    last = bad.stderr.strip().splitlines()[-1]
    assert last.startswith("error: unknown CelebA attribute 'Smile'; valid: Smiling, Male, Eyeglasses"), last


def test_bad_faces_settings(faces_dir, tmp_path):
    config = tiny_faces_config(faces_dir)
    config.analysis.attributes = ("Smiling", "Blond")
    with pytest.raises(DataError, match="unknown CelebA attribute 'Blond'"):
        tasks.train_and_evaluate(config, tmp_path / "a")
    assert not (tmp_path / "a" / "checkpoints").exists()   # refused before any training
    config = tiny_faces_config(faces_dir)
    config.data.train_subset = 10
    with pytest.raises(ConfigError, match="train_subset is for data held on device"):
        tasks.train_and_evaluate(config, tmp_path / "b")
    config = tiny_faces_config(faces_dir)
    config.analysis.morph_pair = (0, 99)
    with pytest.raises(ConfigError, match=r"morph_pair \(0, 99\) must be two indices of the 8 held-out faces"):
        tasks.train_and_evaluate(config, tmp_path / "c")


def test_attribute_vectors_on_known_latents():
    """Codes built from the attributes: the vector is the difference of the two groups' means."""
    from gdl_jax import eval as geval

    rng = np.random.default_rng(0)
    attrs = rng.choice([-1, 1], size=(400, 3))
    attrs[:, 2] = 1                                     # every example has attribute 2
    shift = np.array([[3.0, 0.0, 0.0, 0.0], [0.0, -2.0, 1.0, 0.0], [5.0, 5.0, 5.0, 5.0]])
    z = rng.normal(size=(400, 4)) + (attrs > 0) @ shift
    vectors, counts = geval.attribute_vectors(z, attrs)
    has = attrs > 0
    for a in range(2):
        np.testing.assert_allclose(vectors[a], z[has[:, a]].mean(0) - z[~has[:, a]].mean(0), rtol=1e-5)
        np.testing.assert_allclose(vectors[a], shift[a], atol=0.35)   # the planted direction
    np.testing.assert_array_equal(vectors[2], 0)          # undefined: no example without it
    np.testing.assert_array_equal(counts, has.sum(0))


def test_auc_counts_pairs_ranked_right_and_ties_as_half():
    """The rank formula against every positive-negative pair, with tied scores."""
    from gdl_jax.tasks.autoencoder import auc

    rng = np.random.default_rng(4)
    positive = rng.random(23) < 0.4
    scores = (rng.integers(0, 6, 23) + 2 * positive).astype(float)   # few values: many ties
    pos, neg = scores[positive][:, None], scores[~positive][None, :]
    brute = ((pos > neg) + 0.5 * (pos == neg)).mean()
    assert 0.55 < brute < 1 or 0 < brute < 0.45   # not the 0.5 of a formula that ignores the scores
    assert auc(scores, positive) == pytest.approx(brute, rel=1e-12)
    assert auc(-scores, positive) == pytest.approx(1 - brute, rel=1e-12)
    assert np.isnan(auc(scores, np.ones(23, bool)))
