"""Who is in the all-ages data set: counts per source, the Anny heads' ages, ethnicity and gender.

    python -m model.data.data_report [--config configs/v2.json] [--data PATH.npz]

Reads the built data set when it is there (--data, or the cache file of the config's data
settings); otherwise draws the same training candidates from Anny's stream (model/data/build_dataset.py),
which differs from the built set only by the few the neck cut refuses (1 in 1,000). Markdown on stdout.
"""
import argparse
from pathlib import Path

import numpy as np

AGE_BINS_YEARS = (1, 3, 6, 12, 18, 30, 45, 60, 75, 90)
ETHNICITIES = ("african", "asian", "caucasian")


def anny_people(n_anny, seed):
    """(ages (n,), phenotypes (n, 8) in ANNY_PHENOTYPES order) of the first n Anny candidates."""
    from dataclasses import asdict
    from .anny_heads import AnnyBody
    from .build_dataset import ANNY_PHENOTYPES, anny_candidate
    body = AnnyBody()
    people = [asdict(anny_candidate(body, seed, k)) for k in range(n_anny)]
    return (np.array([p["age_years"] for p in people]),
            np.array([[p[name] for name in ANNY_PHENOTYPES] for p in people]))


def report(n_ict, ages, phenotypes, names, where):
    lines = [f"Source of these numbers: {where}.", "",
             "| source | training heads | ages |", "|---|---|---|",
             f"| ICT Face Model | {n_ict} | adults (the ICT scans' ages are not given) |",
             f"| Anny | {len(ages)} | {ages.min():.1f}-{ages.max():.1f} years |", "",
             "Anny heads by age (years):", "", "| age | heads | share |", "|---|---|---|"]
    counts, _ = np.histogram(ages, bins=AGE_BINS_YEARS)
    for low, high, count in zip(AGE_BINS_YEARS[:-1], AGE_BINS_YEARS[1:], counts):
        lines.append(f"| {low}-{high} | {count} | {count / len(ages):.1%} |")
    lines += ["", f"Under 12: {(ages < 12).sum()} ({(ages < 12).mean():.1%}); over 60: {(ages > 60).sum()} "
              f"({(ages > 60).mean():.1%}).", "", "Ethnicity weights (each head mixes the three; they sum to 1):", "",
              "| ethnicity | mean weight | heads where it leads | heads where it is over 0.8 |", "|---|---|---|---|"]
    mix = phenotypes[:, [names.index(e) for e in ETHNICITIES]]
    for i, name in enumerate(ETHNICITIES):
        lines.append(f"| {name} | {mix[:, i].mean():.2f} | {(mix.argmax(axis=1) == i).mean():.1%} | "
                     f"{(mix[:, i] > 0.8).mean():.1%} |")
    gender = phenotypes[:, names.index("gender")]
    lines += ["", f"Gender (Anny's 0 male ... 1 female): {(gender < 0.2).mean():.1%} under 0.2, "
              f"{((gender >= 0.2) & (gender <= 0.8)).mean():.1%} between, {(gender > 0.8).mean():.1%} over 0.8 "
              f"(uniform draws). The ICT identities' sexes are not labelled."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/v2.json")
    parser.add_argument("--data", help="a built data set (npz)")
    args = parser.parse_args(argv)
    from ..training.train import load_config
    from .build_dataset import ANNY, ANNY_PHENOTYPES, dataset_path
    settings = load_config(args.config)["data"]
    path = Path(args.data) if args.data else dataset_path(settings)
    if path.exists():
        with np.load(path) as data:
            anny = data["source"] == ANNY
            print(report(int((~anny).sum()), data["age_years"][anny], data["anny_phenotypes"],
                         [str(n) for n in data["anny_phenotype_names"]], f"the built data set {path}"))
    else:
        ages, phenotypes = anny_people(settings["anny_heads"], settings["seed"])
        print(report(settings["heads"], ages, phenotypes, list(ANNY_PHENOTYPES),
                     f"the first {settings['anny_heads']} candidates of Anny's training stream, seed "
                     f"{settings['seed']} ({args.config}; the data set is not built here)"))


if __name__ == "__main__":
    main()
