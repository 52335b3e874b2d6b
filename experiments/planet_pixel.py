"""Book 1.6 (Fig 1-11..1-13): Wrodl fashions as 32x32 images of 256 colours, and per-pixel
Naive Bayes, whose samples are noisy near-identical faces. Reports the held-out per-pixel
log-likelihood (the number later image models are compared on).

python -m experiments.planet_pixel --workdir=workdirs/planet_pixel
"""

from gdl_jax import runtime

runtime.configure(__name__)

import math  # noqa: E402
import pathlib  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from gdl_jax.classic import avatars, planet_pixel  # noqa: E402
from gdl_jax.cli import run_or_exit  # noqa: E402
from gdl_jax.outputs import write_results  # noqa: E402
from gdl_jax.viz import figures  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "workdirs/planet_pixel", "Where figures and results.json go.")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_integer("num_train", 4000, "Training images.", lower_bound=1)
flags.DEFINE_integer("num_heldout", 1000, "Held-out images for the log-likelihood.", lower_bound=1)
flags.DEFINE_float("pseudocount", 0.01, "Additive smoothing per pixel and colour (> 0 keeps the "
                   "held-out likelihood finite).", lower_bound=0.0)


def run() -> None:
    workdir = pathlib.Path(FLAGS.workdir)
    k_data, k_sample = jax.random.split(jax.random.PRNGKey(FLAGS.seed))
    images = planet_pixel.make_dataset(k_data, FLAGS.num_train + FLAGS.num_heldout)
    train, heldout = images[:FLAGS.num_train], images[FLAGS.num_train:]
    model = planet_pixel.fit_pixel_naive_bayes(train, FLAGS.pseudocount)
    samples = planet_pixel.sample_images(model, k_sample, 10)

    print("Fig 1-12: pixels 458-467 of the first 10 observations")
    for i, row in enumerate(train[:10].reshape(10, -1)[:, 458:468]):
        print(f"  {i}: {' '.join(f'{v:3d}' for v in row)}")
    figures.image_grid(avatars.from_palette_indices(train[:20]), workdir / "fig_1_11_planet_pixel.png")
    figures.image_grid(avatars.from_palette_indices(samples), workdir / "fig_1_13_naive_bayes_samples.png")
    nats = planet_pixel.log_likelihood_per_pixel(model, heldout)
    results = {"num_train": len(train), "num_heldout": len(heldout), "pseudocount": FLAGS.pseudocount,
               "free_params": model.num_free_params,
               "heldout_log_likelihood_nats_per_pixel": nats,
               "heldout_bits_per_pixel": -nats / math.log(2),
               "train_log_likelihood_nats_per_pixel": planet_pixel.log_likelihood_per_pixel(model, train),
               "distinct_colours_in_data": int(len(np.unique(images)))}
    print(write_results(workdir, results).read_text())


def main(argv):
    del argv
    run_or_exit(run)


if __name__ == "__main__":
    app.run(main)
