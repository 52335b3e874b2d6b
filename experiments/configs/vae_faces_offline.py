"""Book 3.4-3.7 on the offline CelebA subset (faces 000001-010000 at 89x109, upscaled to 128x128):
the book's faces VAE, its settings and figures, with 9,500 training and 500 held-out faces, sized
to train in about 20 minutes on 2 CPU cores (Zen 4). Fig 3-18, 3-19, 3-20, 3-21, 3-22."""

from experiments.configs.vae_faces import get_config as faces_config


def get_config():
    c = faces_config()
    c.num_epochs = 12
    c.data.eval_examples = 0
    c.analysis.attribute_examples = 9500
    c.checkpoint_every_steps = 500
    return c
