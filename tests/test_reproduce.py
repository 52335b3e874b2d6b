"""experiments.reproduce: every row's flags parse and validate; a real subset runs on the offline data."""

import json
import os
import pathlib
import subprocess
import sys
import warnings

import pytest
from absl import flags
from conftest import SHARED_DATA
from ml_collections import config_flags

from experiments import rows
from gdl_jax import report


def _validator(task: str):
    if task == "classifier":
        from gdl_jax.train.runner import validate
        return validate
    if task in ("autoencoder", "vae"):
        from experiments.autoencoder import validate
        return validate
    from experiments.gan import validate
    return validate


@pytest.mark.parametrize("preset", ["quick", "book"])
def test_every_training_row_parses_and_validates(preset, tmp_path):
    """Each experiments.main row's config with its flags (both presets), through absl and
    ml_collections as the binary parses them, then the trainer's own validation: a misspelt
    key or an out-of-range value in a row fails here, not hours into a report."""
    workdirs = {r.name: tmp_path / r.name for r in rows.ROWS}
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
        if "{features.mnist}" in " ".join(row.args):
            assert config.quality_features == str(workdirs["features.mnist"])
        checked += 1
    assert checked == 12


def test_needed_rows_come_first():
    names = [r.name for r in rows.ROWS]
    for i, row in enumerate(rows.ROWS):
        assert all(names.index(n) < i for n in row.needs), row.name
    assert {i for r in rows.ROWS for i in r.ids} >= {f"1.{i}" for i in range(1, 8)} | \
        {f"2.{i}" for i in range(1, 7)} | {f"3.{i}" for i in range(1, 8)} | {f"4.{i}" for i in range(1, 6)}


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir() or not (SHARED_DATA / "quickdraw").is_dir(),
                    reason="needs the offline data copies (../shared/data)")
def test_quick_preset_subset_on_the_offline_data(tmp_path):
    """4.1 with the row it needs (the MNIST features) and 2.5, run as a user runs them."""
    env = {**os.environ, "GDL_DATA_DIR": str(SHARED_DATA)}
    proc = subprocess.run([sys.executable, "-m", "experiments.reproduce", "--preset=quick", "--only=2.5,4.1",
                           f"--output_dir={tmp_path}"], capture_output=True, text=True, env=env,
                          cwd=pathlib.Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads((tmp_path / "report.json").read_text())
    assert [r["name"] for r in got["rows"]] == ["conv_by_hand", "features.mnist", "gan"]
    assert all(r["status"] == "ok" for r in got["rows"])
    gan = got["rows"][-1]
    assert gan["ours"]["D params"] == 720_833 and gan["ours"]["G params"] == 844_161
    fm = gan["metrics"]["feature_metrics"]
    assert fm["features"].startswith("cnn on mnist") and fm["generated_images"] == 300
    assert "fig_4_10_nearest_training.png" in gan["figures"]
    md = (tmp_path / "report.md").read_text()
    assert "3 of 3 rows ok" in md and "![samples.png](rows/gan/samples.png)" in md
    assert "[3/3] gan" in proc.stderr and "left)" in proc.stderr     # progress: rows and time left
