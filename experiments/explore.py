"""A local web page over a trained model's latent space: sample a grid from the prior, walk a 2-D
latent plane over the encoded test images, encode an uploaded or picked image, move along
CelebA attribute vectors, morph between two latents, download what you see.

python -m experiments.explore --workdir=workdirs/vae_mnist
python -m experiments.explore --workdir=workdirs/vae_faces --port=8080 --data_dir=/path/to/data

Any workdir that gdl_jax.load opens: the MNIST autoencoder / VAE, the faces VAE, the GAN, WGAN
and WGAN-GP. Needs the `explore` extra (pip install -e '.[explore]'). Listens on 127.0.0.1
unless --host says otherwise; --port=0 takes any free port (the address is printed).
"""

from gdl_jax import runtime

runtime.configure(__name__)  # XLA flags (and a restart for huge pages) before jax starts

import sys  # noqa: E402
from typing import Sequence  # noqa: E402

from absl import app, flags, logging  # noqa: E402

import gdl_jax  # noqa: E402
from gdl_jax.errors import ConfigError, GdlError  # noqa: E402

flags.DEFINE_string("workdir", None, "A trained run's workdir (experiments.main --workdir=...).", required=True)
flags.DEFINE_string("host", "127.0.0.1", "Address to listen on; anything but 127.0.0.1 / localhost "
                    "exposes the page to the network.")
flags.DEFINE_integer("port", 8080, "Port to listen on (0: any free port).")
flags.DEFINE_string("data_dir", None, "Where the model's data set is, for the test images offered to pick "
                    "(default: the run config's data.data_dir if it names one, else $GDL_DATA_DIR, else tfds).")
FLAGS = flags.FLAGS


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)   # the address line, not orbax's restore records
    try:
        try:
            from gdl_jax.explore import app as web
        except ImportError as e:
            raise ConfigError(f"the explorer needs the explore extra ({e.name} is missing): "
                              "pip install -e '.[explore]'") from None
        from gdl_jax.explore import Explorer, load_picks

        model = gdl_jax.load(FLAGS.workdir)
        sock = web.bind(FLAGS.host, FLAGS.port)
        explorer = Explorer(model, *load_picks(model, FLAGS.data_dir))
        compile_s = explorer.warm_up()
    except GdlError as e:
        sys.exit(f"error: {e}")
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"gdl_jax explorer: the {model.kind} in {FLAGS.workdir} (compiled in {compile_s:.1f} s) at "
          f"http://{shown}:{port}/ (Ctrl-C stops)", flush=True)
    web.serve(web.create_app(explorer), sock)


if __name__ == "__main__":
    app.run(main)
