"""Book 3.4-3.7: the faces VAE on the full CelebA, as the book trains it (z_dim 200, BatchNorm +
LeakyReLU + Dropout 0.25, loss 10000 * mse + KL, Adam 5e-4, batch 32, 5 epochs). Fig 3-18
reconstructions, Fig 3-19 latent histograms, Fig 3-20 new faces, Fig 3-21 attribute vectors, Fig
3-22 morphing. Encoder 1,732,944 params (448 non-trainable), decoder 917,123 (320).

Needs the full data set: a folder <data dir>/celeba/ with img_align_celeba/ and
list_attr_celeba.txt (and list_eval_partition.txt for the official test split), or tfds celeb_a.
"""

import ml_collections

from experiments.configs.ae_mnist import get_config as ae_config

BN_DROPOUT = {"kernels": (3, 3, 3, 3), "strides": (2, 2, 2, 2), "use_batch_norm": True, "dropout": 0.25}


def get_config() -> ml_collections.ConfigDict:
    c = ae_config("vae")
    c.figure = "Fig 3-18, 3-19, 3-20, 3-21, 3-22"
    c.model.encoder = {"filters": (32, 64, 64, 64), "z_dim": 200, **BN_DROPOUT}
    c.model.decoder = {"shape_before_flattening": (8, 8, 64), "filters": (64, 64, 32, 3), **BN_DROPOUT}
    c.r_loss_factor = 10000.0
    c.num_epochs = 5
    c.data.name = "celeba"
    c.data.image_size = 128
    c.data.crop = "none"          # 'none': the whole frame squashed to a square, as the book; 'square'
    c.data.test_size = 500        # held-out faces when the folder has no list_eval_partition.txt
    c.data.eval_examples = 2000   # held-out faces evaluated each epoch (0 = the whole test split)
    c.data.stream_workers = 2     # decode threads (or processes) of the streamed feeder
    c.data.stream_processes = False   # True: decode in spawned processes (scales with cores; for GPU hosts)
    c.data.prefetch = 8           # batches decoded ahead
    c.eval_batch_size = 250
    c.log_every_steps = 200
    c.checkpoint_every_steps = 1000
    c.analysis = ml_collections.ConfigDict({
        "attributes": ("Smiling", "Blond_Hair", "Male", "Eyeglasses"),   # Fig 3-21, any of the 40
        "attribute_examples": 5000,   # training faces encoded for the attribute vectors
        "arithmetic_faces": 2,        # held-out faces per attribute in Fig 3-21
        "morph_pair": (0, 1),         # held-out face indices for Fig 3-22
        "morph_steps": 9,
        "nearest_pool": 5000,         # training faces searched for the novelty of samples (rule 2)
    })
    return c
