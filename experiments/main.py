"""Trains any config: python -m experiments.main --config=experiments/configs/cnn_cifar10.py.

Flags: --config (a file in experiments/configs, with overrides such as --config.batch_size=64),
--workdir (checkpoints, metrics.jsonl, figures, results.json; default workdirs/<config name>).
Running the same command again resumes from the latest checkpoint in the workdir. --distributed
joins a multi-host run (every process runs the same command; process 0 writes the files).
"""

from gdl_jax import runtime

runtime.configure(__name__)  # XLA flags (and a restart for huge pages) before jax starts

import logging as std_logging  # noqa: E402
import pathlib  # noqa: E402
from typing import Sequence  # noqa: E402

from absl import app, flags, logging  # noqa: E402

from gdl_jax import cli, parallel, tasks  # noqa: E402
from gdl_jax.errors import ConfigError  # noqa: E402
from gdl_jax.models import conv  # noqa: E402

CONFIGS = pathlib.Path(__file__).parent / "configs"
FLAGS = flags.FLAGS
cli.define_config_flag(str(CONFIGS / "cnn_cifar10_quick.py"), "Experiment config file.")
flags.DEFINE_string("workdir", None, "Output directory (default: workdirs/<config file name>).")
flags.DEFINE_bool("distributed", False, "Join a multi-host job with jax.distributed.initialize(): from the "
                  "three flags below when given, else from the cluster's environment (SLURM, Open MPI, TPU).")
flags.DEFINE_string("coordinator_address", None, "With --distributed: host:port of process 0's coordinator.")
flags.DEFINE_integer("num_processes", None, "With --distributed: how many processes the job has.")
flags.DEFINE_integer("process_id", None, "With --distributed: this process's index, 0 to num_processes - 1.")
flags.DEFINE_enum("conv_forms", None, list(conv.MODES), "How convolutions choose their form (default: $GDL_JAX_CONV, "
                  "else 'auto': the train step timed once per machine under each mode, the fastest kept and "
                  "cached; 'layer': each layer's fastest alone; 'rule': fixed rules; 'untuned': 'auto' without "
                  "timing (the rules on CPU, lax's on GPU/TPU); 'lax', 'im2col', "
                  "'subpixel', 's2d': that form). See gdl_jax.models.conv.")


def _quiet_orbax(record) -> bool:
    """Drops orbax's INFO chatter (dozens of lines per checkpoint); keeps its warnings."""
    return "/orbax/" not in record.pathname or record.levelno >= std_logging.WARNING


def run(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments: {argv[1:]}")
    if FLAGS.distributed:
        parallel.initialize_distributed(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    elif FLAGS.coordinator_address or FLAGS.num_processes is not None or FLAGS.process_id is not None:
        raise ConfigError("--coordinator_address, --num_processes and --process_id need --distributed")
    config = cli.config()
    workdir = FLAGS.workdir or str(pathlib.Path("workdirs") / cli.config_path().stem)
    logging.info("config %s -> workdir %s", cli.config_path(), workdir)
    conv.set_forms(FLAGS.conv_forms)
    tasks.train_and_evaluate(config, workdir)


def main(argv: Sequence[str]) -> None:
    logging.get_absl_handler().python_handler.addFilter(_quiet_orbax)
    cli.run_or_exit(lambda: run(argv))


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
