"""Re-runs the chapter 3 analysis (figures, latent statistics, latents.npz) from a trained
workdir's latest checkpoint, e.g. with other attributes for Fig 3-21 or another morphing pair:

python -m experiments.analyze_autoencoder --config=experiments/configs/vae_mnist.py --workdir=workdirs/vae_mnist
python -m experiments.analyze_autoencoder --config=experiments/configs/vae_faces_offline.py \
    --workdir=workdirs/vae_faces_offline --config.analysis.attributes="('Bald','Wearing_Hat')" \
    --config.analysis.morph_pair="(3,7)"
"""

from gdl_jax import runtime

runtime.configure(__name__)

import contextlib  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402

from absl import app, flags  # noqa: E402

from gdl_jax import cli, models, outputs, parallel  # noqa: E402
from gdl_jax.api import TrainedModel  # noqa: E402
from gdl_jax.errors import ConfigError  # noqa: E402
from gdl_jax.tasks import autoencoder  # noqa: E402
from gdl_jax.train import runner  # noqa: E402

FLAGS = flags.FLAGS
cli.define_config_flag(None, "The config the workdir was trained with.")
flags.DEFINE_string("workdir", None, "A workdir holding checkpoints of that config.")
flags.mark_flags_as_required(["config", "workdir"])


def run() -> None:
    config, workdir = cli.config(), pathlib.Path(FLAGS.workdir)
    if config.get("task") not in ("autoencoder", "vae"):
        raise ConfigError(f"{cli.config_path()} is a {config.get('task', 'classifier')!r} config; this binary "
                          "analyses autoencoder and vae runs")
    autoencoder.validate(config)
    model = models.from_config(config.model)
    shape = runner.image_shape(config)
    # a run still training there would overwrite these figures: refused, like a second run
    with outputs.locked(workdir, "workdir") if workdir.is_dir() else contextlib.nullcontext():
        state = runner.restore(config, workdir, model, shape, parallel.make_mesh())   # before any data is read
        train, test, test_attributes = autoencoder.load_data(config)
        trained = TrainedModel(config, model, state.variables(), shape)
        print(json.dumps(autoencoder.analyze(trained, config, train, test, test_attributes, workdir), indent=2))


def main(argv):
    del argv
    cli.run_or_exit(run)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
