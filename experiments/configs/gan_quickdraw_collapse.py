"""Book 4.3, Fig 4-12: mode collapse, by the book's own recipe: "train the generator over several
batches without updating the discriminator in between". The book's GAN trains as usual for 500
steps, then the discriminator stops learning (d_freeze_step) and the generator trains on for 500
more against it, drifting to the few images that fool this one discriminator. `results.json`
gives `sample_diversity` (mean pairwise L1 of 100 samples over that of 100 training cats: ~1
for varied samples, near 0 when they collapse); Fig 4-9 shows the samples before and after."""

import ml_collections

from experiments.configs import gan_quickdraw


def get_config() -> ml_collections.ConfigDict:
    c = gan_quickdraw.get_config()
    c.figure = "Fig 4-12"
    c.seed = 1
    c.d_freeze_step = 500
    c.num_steps = 1000
    c.analysis.sample_steps = (100, 300, 500, 600, 700, 1000)
    c.analysis.grid_png = "fig_4_12_mode_collapse.png"
    return c
