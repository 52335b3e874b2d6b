"""Book 1.7 (Fig 1-14, 1-15): biscuit tins from two latent factors, height and width, and the
map f from the 2-D latent space to images.

python -m experiments.biscuit_tins --workdir=workdirs/biscuit_tins
"""

from gdl_jax import runtime

runtime.configure(__name__)

import pathlib  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from gdl_jax.classic import biscuit_tins as tins  # noqa: E402
from gdl_jax.cli import run_or_exit  # noqa: E402
from gdl_jax.outputs import write_results  # noqa: E402
from gdl_jax.viz import figures  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "workdirs/biscuit_tins", "Where figures and results.json go.")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_integer("num_tins", 20, "Tins in the data set figure (Fig 1-14).", lower_bound=1)
flags.DEFINE_integer("grid", 6, "Latent grid points per axis (Fig 1-15).", lower_bound=2)
flags.DEFINE_integer("size", 64, "Image side in pixels.", lower_bound=16)


def run() -> None:
    workdir = pathlib.Path(FLAGS.workdir)
    latents = tins.sample_latents(jax.random.PRNGKey(FLAGS.seed), FLAGS.num_tins)
    images = np.asarray(tins.generate(latents, FLAGS.size))
    figures.image_grid(images, workdir / "fig_1_14_biscuit_tins.png", ncols=10)
    axis = np.linspace(*tins.LIMITS, FLAGS.grid)
    # x: width, y: height (as in Fig 1-15); generate takes (height, width).
    figures.latent_grid(lambda z: tins.generate(z[:, ::-1], FLAGS.size), axis, axis,
                        workdir / "fig_1_15_latent_space.png", x_label="width", y_label="height",
                        scatter=np.asarray(latents)[:, ::-1])
    print(write_results(workdir, {"num_tins": FLAGS.num_tins, "latent_dims": ["height", "width"],
                                  "grid": FLAGS.grid}))


def main(argv):
    del argv
    run_or_exit(run)


if __name__ == "__main__":
    app.run(main)
