"""Reproduces every row of the book's chapters 1-4 and writes one report.

python -m experiments.reproduce --preset=quick              # minutes on a 2-core CPU
python -m experiments.reproduce --preset=book --only=2.3,4.5

Each row runs its binary in a process of its own with a workdir under <output_dir>/rows/ (a
failed row is reported as failed and the rest still run); <output_dir>/report.md holds, per row,
the book's number, ours, the sample-quality metrics, the figures (embedded) and the wall time;
report.json the same as data. Presets:
- book: each config as it is, at the book's step counts (the WGAN-GP on whichever CelebA the
  data dir holds, the offline 10,000 faces or the full set; 14-20 h of it on a 2-core CPU);
- quick: small step counts and subsets of the offline data, to check that every row runs and
  writes its figures, not to match the book's numbers (convolutions take their untuned forms,
  $GDL_JAX_CONV=untuned, unless it is set: the fixed rules on CPU, lax's on GPU/TPU, and no
  per-row timing of their forms).
The GAN and VAE rows on MNIST-sized and CIFAR-10 images measure their samples in the features of a
classifier trained by an earlier row (features.mnist, features.celeba, the CIFAR-10 CNN of 2.3);
with --inception_weights (pytorch-fid's FID InceptionV3 weights, .pth or .npz) also in InceptionV3's:
FID, comparable with pytorch-fid's on as many images (gdl_jax.eval.inception). Data: --data_dir,
else $GDL_DATA_DIR, else tensorflow-datasets. Running the same command again resumes each row
from its workdir; the report then gives a row's wall time over all its runs.
"""

import os
import signal
import sys

from absl import app, flags

from experiments.rows import ROWS
from gdl_jax import cli, report
from gdl_jax.errors import ConfigError, GdlError

FLAGS = flags.FLAGS
flags.DEFINE_enum("preset", "quick", ["quick", "book"], "quick: minutes on a CPU; book: the book's budgets.")
flags.DEFINE_list("only", [], "Row ids (e.g. 2.3,4.5) or names to run, with the rows they need; default: all.")
flags.DEFINE_string("output_dir", None, "Where report.md, report.json and rows/ go "
                    "(default workdirs/reproduce_<preset>).")
flags.DEFINE_string("data_dir", None, "The data folder for every row (default: $GDL_DATA_DIR, else tfds).")
flags.DEFINE_string("inception_weights", None, "pytorch-fid's FID InceptionV3 weights (.pth, or .npz of its state "
                    "dict): the sample rows also report FID in its features.")


def main(argv):
    try:
        if len(argv) > 1:
            raise ConfigError(f"unexpected arguments: {argv[1:]}")
        rows = report.select(ROWS, FLAGS.only)
        if FLAGS.inception_weights:
            from gdl_jax.eval import inception
            inception.load_variables(FLAGS.inception_weights)
            rows = report.with_inception(rows, FLAGS.inception_weights)
    except GdlError as e:
        sys.exit(f"error: {e}")
    env = {"GDL_DATA_DIR": FLAGS.data_dir} if FLAGS.data_dir else {}
    if FLAGS.preset == "quick" and "GDL_JAX_CONV" not in os.environ:
        env["GDL_JAX_CONV"] = "untuned"   # no convolution-form timing per row: quick checks, not speed
    out = FLAGS.output_dir or f"workdirs/reproduce_{FLAGS.preset}"
    try:
        result = report.run(rows, FLAGS.preset, out, env)
    except GdlError as e:   # e.g. the output dir in use by another reproduce
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:   # the running row stopped first (report.run_row)
        cli.die_of(signal.SIGINT, "interrupted: run the same command again to go on from each row's checkpoint")
    failed = [r["name"] for r in result["rows"] if r["status"] != "ok"]
    print(f"{out}/report.md: {len(result['rows']) - len(failed)} of {len(result['rows'])} rows ok"
          + (f"; failed: {', '.join(failed)}" if failed else ""))


if __name__ == "__main__":
    app.run(main)
