"""Book 2.5 (Fig 2-10, 2-11): the convolution worked by hand, then edge filters over an image.

python -m experiments.conv_by_hand --workdir=workdirs/conv_by_hand [--image=photo.png]
Without --image, the first CIFAR-10 test image from $GDL_DATA_DIR is used (upscaled to 64x64),
or a drawn test pattern when no data dir is set.
"""

from gdl_jax import runtime

runtime.configure(__name__)

import pathlib  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from PIL import Image, UnidentifiedImageError  # noqa: E402

from gdl_jax import data as gdata  # noqa: E402
from gdl_jax import ops  # noqa: E402
from gdl_jax.errors import GdlError  # noqa: E402
from gdl_jax.outputs import write_results  # noqa: E402
from gdl_jax.viz import figures  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "workdirs/conv_by_hand", "Where the figure is written.")
flags.DEFINE_string("image", None, "An image file to filter (default: CIFAR-10 or a test pattern).")
flags.DEFINE_integer("size", 64, "Side of the greyscale image in pixels (the book uses 64).", lower_bound=8)

def test_pattern(size: int) -> np.ndarray:
    """A bright square and a disc on a dark background: clean horizontal and vertical edges."""
    y, x = np.mgrid[:size, :size] / size
    img = ((x > 0.15) & (x < 0.5) & (y > 0.2) & (y < 0.6)).astype(np.float32)
    img += ((x - 0.7) ** 2 + (y - 0.65) ** 2 < 0.04).astype(np.float32) * 0.6
    return img


def load_grey(size: int) -> np.ndarray:
    if FLAGS.image:
        try:
            img = Image.open(FLAGS.image)
        except (OSError, UnidentifiedImageError) as e:
            raise GdlError(f"--image {FLAGS.image} is not a readable image: {e}") from None
    elif gdata.resolve_data_dir(None) is not None:
        img = Image.fromarray(gdata.load("cifar10", "test").images[0])
    else:
        return test_pattern(size)
    return np.asarray(img.convert("L").resize((size, size), Image.BICUBIC), np.float32) / 255.0


def main(argv):
    del argv
    try:
        grey = load_grey(FLAGS.size)
    except GdlError as e:
        sys.exit(f"error: {e}")
    pos, neg = ops.fig_2_10()
    logging.info("Fig 2-10: filter response %.1f on the portion, %.1f on its negative", pos, neg)
    print(f"Fig 2-10: {pos:.1f} and {neg:.1f}")
    responses = [np.asarray(ops.convolve2d(grey, k)) for k in (ops.HORIZONTAL_EDGE, ops.VERTICAL_EDGE)]
    path = figures.filter_responses(grey, responses, ["horizontal edge filter", "vertical edge filter"],
                                    pathlib.Path(FLAGS.workdir) / "conv_edges.png")
    print(f"Fig 2-11 written to {path}")
    write_results(FLAGS.workdir, {"fig_2_10": [round(float(pos), 4), round(float(neg), 4)]})


if __name__ == "__main__":
    app.run(main)
