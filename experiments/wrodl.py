"""Book 1.2-1.5 (Fig 1-7..1-10): Wrodl fashions, the multinomial MLE, additive smoothing and
Naive Bayes, with 10 new styles sampled and rendered.

python -m experiments.wrodl --workdir=workdirs/wrodl
"""

from gdl_jax import runtime

runtime.configure(__name__)

import pathlib  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from gdl_jax.classic import avatars, wrodl  # noqa: E402
from gdl_jax.classic.categorical import Multinomial, NaiveBayes, log_likelihood  # noqa: E402
from gdl_jax.cli import run_or_exit  # noqa: E402
from gdl_jax.outputs import write_results  # noqa: E402
from gdl_jax.viz import figures  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "workdirs/wrodl", "Where figures and results.json go.")
flags.DEFINE_string("data", str(wrodl.CSV_PATH), "Wrodl CSV (face_id + the 5 feature columns).")
flags.DEFINE_integer("seed", 0, "Random seed for the sampled styles.")
flags.DEFINE_integer("num_samples", 10, "New styles to sample (Fig 1-10).", lower_bound=1)

# The book's worked examples: combination 1 is seen twice, combination 2 never.
COMBINATION_1 = ("LongHairStraight", "Red", "Round", "ShirtScoopNeck", "White")
COMBINATION_2 = ("LongHairStraight", "Red", "Round", "ShirtScoopNeck", "Blue01")


def marginal_tables(nb: NaiveBayes, n: int) -> str:
    """Fig 1-9: per feature, each value's count and MLE."""
    lines = []
    for k, (feature, values) in enumerate(wrodl.FEATURES.items()):
        lines.append(f"{feature:<22} n    theta")
        theta = np.asarray(nb.marginal(k))
        lines += [f"  {v:<20} {round(t * n):>3}  {t:.2f}" for v, t in zip(values, theta)]
    return "\n".join(lines)


def run() -> None:
    workdir = pathlib.Path(FLAGS.workdir)
    codes = wrodl.load(FLAGS.data)
    n, cards = len(codes), wrodl.CARDINALITIES
    full, smooth = Multinomial.fit(codes, cards), Multinomial.fit(codes, cards, pseudocount=1.0)
    nb = NaiveBayes.fit(codes, cards)
    combos = wrodl.encode([COMBINATION_1, COMBINATION_2])
    factors = [float(nb.marginal(k)[c]) for k, c in enumerate(combos[0])]
    print(f"sample space: {' x '.join(map(str, cards))} = {int(np.prod(cards))} points; N = {n}")
    print(marginal_tables(nb, n))
    print(f"Naive Bayes: {nb.num_free_params} free parameters; p{COMBINATION_1} = "
          f"{' x '.join(f'{f:.2f}' for f in factors)} = {float(nb.prob(combos)[0]):.4f}")

    samples = nb.sample(jax.random.PRNGKey(FLAGS.seed), FLAGS.num_samples)
    styles = wrodl.decode(samples)
    seen = {tuple(r) for r in codes.tolist()}
    render = lambda rows: np.stack([avatars.render(r, 64) for r in rows])
    figures.image_grid(render(wrodl.decode(codes)), workdir / "fig_1_7_wrodlers.png", ncols=10)
    figures.image_grid(render(styles), workdir / "fig_1_10_naive_bayes_styles.png", ncols=5,
                       titles=["new" if tuple(s) not in seen else "seen" for s in samples.tolist()])
    results = {
        "N": n, "sample_space": int(np.prod(cards)),
        "multinomial": {"free_params": full.num_free_params,
                        "p_combination_1": float(full.prob(combos)[0]),
                        "p_combination_2": float(full.prob(combos)[1]),
                        "log_likelihood": log_likelihood(full, codes)},
        "smoothed_multinomial": {"p_combination_1": float(smooth.prob(combos)[0]),
                                 "p_unseen": float(smooth.prob(combos)[1]),
                                 "log_likelihood": log_likelihood(smooth, codes)},
        "naive_bayes": {"free_params": nb.num_free_params,
                        "marginals": {f: dict(zip(v, np.round(np.asarray(nb.marginal(k)), 4).tolist()))
                                      for k, (f, v) in enumerate(wrodl.FEATURES.items())},
                        "p_combination_1": float(nb.prob(combos)[0]),
                        "p_combination_2": float(nb.prob(combos)[1]),
                        "log_likelihood": log_likelihood(nb, codes)},
        "samples": styles,
        "samples_not_in_data": int(sum(tuple(s) not in seen for s in samples.tolist())),
    }
    print(write_results(workdir, results))


def main(argv):
    del argv
    run_or_exit(run)


if __name__ == "__main__":
    app.run(main)
