"""Defaults shared by the chapter 2 classifier configs (book: Adam 5e-4, batch 32, 10 epochs)."""

import ml_collections


def classifier_config(model: str, figure: str) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "classifier"
    c.figure = figure
    c.model = ml_collections.ConfigDict({"name": model})
    c.data = ml_collections.ConfigDict({
        "name": "cifar10",
        "data_dir": "",        # '' = $GDL_DATA_DIR, else tfds
        "source": "auto",      # 'auto' | 'local' | 'tfds'
        "train_subset": 0,     # 0 = every training example
    })
    c.batch_size = 32
    c.num_epochs = 10
    c.num_steps = 0              # > 0: train this many steps instead of num_epochs epochs
    c.optimizer = "adam"
    c.optimizer_kwargs = {"b1": 0.9, "b2": 0.999, "eps": 1e-8}   # optax's Adam defaults (Keras' eps: 1e-7)
    c.learning_rate = 5e-4
    c.seed = 0
    c.parallel = "sharded"       # data parallelism: 'sharded' (jit, global code) or 'pmap' (per-device code)
    c.compute_dtype = "float32"  # or 'bfloat16': forward and backward passes (params, losses stay float32)
    c.steps_per_dispatch = 4   # unrolled train steps per jitted call
    c.log_every_steps = 500
    c.checkpoint_every_steps = 2000
    c.eval_batch_size = 1000
    c.num_prediction_examples = 10
    return c
