"""experiments.reproduce: every row's flags parse and validate; a real subset runs on the offline data."""

import json
import math
import os
import pathlib
import subprocess
import sys
import warnings

import pytest
from absl import flags
from conftest import SHARED_DATA, TEST_XLA_FLAG, xla_flags_without
from ml_collections import config_flags

from experiments import rows
from gdl_jax import report


def _validator(task: str):
    if task == "classifier":
        from gdl_jax.train.runner import validate
        return validate
    if task in ("autoencoder", "vae"):
        from gdl_jax.tasks.autoencoder import validate
        return validate
    from gdl_jax.tasks.gan import validate
    return validate


@pytest.mark.parametrize("preset", ["quick", "book"])
def test_every_training_row_parses_and_validates(preset, tmp_path):
    """Each experiments.main row's config with its flags (both presets), through absl and
    ml_collections as the binary parses them, then the trainer's own validation: a misspelt
    key or an out-of-range value in a row fails here, not hours into a report."""
    workdirs = {r.name: tmp_path / r.name for r in rows.ROWS}
    for needed in {n for r in rows.ROWS for n in r.needs}:   # as if the feature classifiers had run
        workdirs[needed].mkdir()
        (workdirs[needed] / "config.json").write_text('{"task": "classifier"}')
        (workdirs[needed] / "checkpoints" / "1").mkdir(parents=True)
    checked = 0
    for row in rows.ROWS:
        if row.module != "experiments.main":
            continue
        argv = ["main"] + report.command(row, preset, workdirs, set())[3:]
        fv = flags.FlagValues()
        config_flags.DEFINE_config_file("config", None, "", flag_values=fv, lock_config=True, sys_argv=argv)
        flags.DEFINE_string("workdir", None, "", flag_values=fv)
        with warnings.catch_warnings():   # ml_collections loads config files with load_module()
            warnings.filterwarnings("ignore", "the load_module", DeprecationWarning)
            fv(argv)
        config = fv.config
        _validator(config.get("task", "classifier"))(config)
        assert fv.workdir == str(workdirs[row.name])
        for needed in ("features.mnist", "features.celeba"):
            if "{%s}" % needed in " ".join(row.args):
                assert config.quality_features == str(workdirs[needed])
        checked += 1
    assert checked == 13


def test_needed_rows_come_first():
    names = [r.name for r in rows.ROWS]
    for i, row in enumerate(rows.ROWS):
        assert all(names.index(n) < i for n in row.needs), row.name
    assert {i for r in rows.ROWS for i in r.ids} >= {f"1.{i}" for i in range(1, 8)} | \
        {f"2.{i}" for i in range(1, 7)} | {f"3.{i}" for i in range(1, 8)} | {f"4.{i}" for i in range(1, 6)}


OFFLINE = all((SHARED_DATA / d).is_dir() for d in ("mnist", "quickdraw", "cifar10", "celeba"))


def _reproduce(tmp_path, *args: str, as_user: bool = False) -> tuple[subprocess.CompletedProcess, dict]:
    """The binary on the offline data; as_user: with XLA's default optimisation, not the tests'
    (conftest), so that its wall time is a user's."""
    env = {**os.environ, "GDL_DATA_DIR": str(SHARED_DATA)}
    if as_user:
        env["XLA_FLAGS"] = xla_flags_without(TEST_XLA_FLAG)
    proc = subprocess.run([sys.executable, "-m", "experiments.reproduce", "--preset=quick", *args,
                           f"--output_dir={tmp_path}"], capture_output=True, text=True, env=env,
                          cwd=pathlib.Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, json.loads((tmp_path / "report.json").read_text())


@pytest.mark.slow   # two of the whole preset's rows, with the report's progress lines
@pytest.mark.skipif(not OFFLINE, reason=f"needs the real data sets in {SHARED_DATA} (set $GDL_TEST_DATA_DIR)")
def test_quick_preset_rows_on_the_offline_data(tmp_path):
    """Two real rows (chapter 1's world map; 2.5 filters a CIFAR-10 test image) through the
    binary as a user runs it: report, figures, progress."""
    proc, got = _reproduce(tmp_path, "--only=1.1,2.5")
    assert [(r["name"], r["status"]) for r in got["rows"]] == [("world_map", "ok"), ("conv_by_hand", "ok")]
    assert got["rows"][1]["ours"] == {"responses": [2.3, -2.3]}
    world = json.loads((tmp_path / "rows" / "world_map" / "results.json").read_text())
    assert got["rows"][0]["ours"] == {"rule 1": world["breaks_rule_1"], "rule 2": world["breaks_rule_2"],
                                      "success": world["success"]}
    assert world["breaks_rule_1"] > 0     # the box around land points takes in sea
    md = (tmp_path / "report.md").read_text()
    assert "2 of 2 rows ok" in md and "![conv_edges.png](rows/conv_by_hand/conv_edges.png)" in md
    assert "[2/2] conv_by_hand" in proc.stderr and "left)" in proc.stderr     # progress: rows and time left


@pytest.mark.slow
@pytest.mark.skipif(not OFFLINE, reason=f"needs the real data sets in {SHARED_DATA} (set $GDL_TEST_DATA_DIR)")
def test_whole_quick_preset_on_the_offline_data(tmp_path):
    """Every row of the quick preset runs and draws its figures, in table order; every
    generative row reports feature metrics (digits and Quick Draw, CIFAR-10 horses, faces) on
    as many samples as real images; the report embeds figures and counts every row ok."""
    proc, got = _reproduce(tmp_path, as_user=True)
    assert [r["name"] for r in got["rows"] if r["status"] != "ok"] == []
    assert [r["name"] for r in got["rows"]] == [r.name for r in rows.ROWS]
    assert all(r["figures"] for r in got["rows"])
    by_name = {r["name"]: r for r in got["rows"]}
    for name in ("ae_mnist", "vae_mnist", "vae_faces", "gan", "gan_oscillation", "gan_collapse", "wgan", "wgan_gp"):
        fm = by_name[name]["metrics"]["feature_metrics"]
        # samples of a few training steps are far from the data: a distance of 0 would be real
        # images compared with themselves
        assert 0 < fm["frechet_distance"] < math.inf and fm["generated_images"] == fm["real_images"] >= 100, (name, fm)
    assert by_name["gan"]["ours"]["D params"] == 720_833
    assert f"{len(rows.ROWS)} of {len(rows.ROWS)} rows ok" in (tmp_path / "report.md").read_text()
    assert f"[{len(rows.ROWS)}/{len(rows.ROWS)}] wgan_gp" in proc.stderr
