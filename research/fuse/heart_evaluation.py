"""Leave-one-hospital-out evaluation of fusion on the four UCI heart-disease hospitals.

Each hospital's model is trained by train's own trainer (``services.train.training.train_model``) on its own
records only. For every hospital held out in turn, the other three hospitals' models score all of its records; the
fused result is made by fuse's production code (``services.fuse.join.fuse``) from cards carrying the trainer's
cross-site AUCs, of which the held-out hospital's own entry is never used (fuse leaves out the record's hospital).

Run ``.venv/bin/python -m research.fuse.heart_evaluation`` (about 35 s on 2 cores) to print the table in
docs/fuse.md and the needs_review table in research/fuse/README.md; ``research.fuse.fusion_alternatives`` compares
every other fusion rule tried, on this and other training seeds. ``tests/unit/fuse/test_heart_evaluation.py`` runs
``evaluate`` and pins what fusion must always give.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from services.fuse.directory import ModelDirectory
from services.fuse.fusion import logit, validation_auc
from services.fuse.join import fuse
from services.train.dataset import Dataset, split
from services.train.evaluate import roc_auc
from services.train.training import TrainedModel, train_model
from shared.schemas.models import ModelCard, ModelRef
from shared.schemas.predictions import FusedPrediction, Prediction
from shared.tasks import FusionSpec, TaskSpec, load_tasks
from tests.support.factories.heart import heart_dataset as labelled_rows

HOSPITALS = ("cleveland", "hungary", "va-long-beach", "switzerland")
METHODS = ("weighted_average", "logit_average", "majority_vote")
BOOTSTRAP = 2000


def heart_dataset(task: TaskSpec) -> Dataset:
    """The 920 real rows through ingest's reader and the task's feature and label definitions, labelled ones only."""
    return labelled_rows(task, labelled_only=True)


def card_of(model: TrainedModel) -> ModelCard:
    return ModelCard(
        task=model.task,
        site=model.site,
        version="eval",
        status="active",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        metrics=model.metrics,
        cross_site=model.cross_site,
        artifact_uri="file:///eval",
        artifact_sha256="0" * 64,
    )


def fused_results(
    spec: FusionSpec,
    cards: list[ModelCard],
    probabilities: dict[str, np.ndarray],
    held_out: str,
    equal_weights: bool = False,
) -> list[FusedPrediction]:
    """fuse's production path, record by record."""
    if equal_weights:
        cards = [c.model_copy(update={"cross_site": {}, "metrics": {}}) for c in cards]
    directory = ModelDirectory(cards)
    out = []
    for i in range(len(next(iter(probabilities.values())))):
        predictions = [
            Prediction(
                record_id=str(i),
                patient="p",
                hospital=held_out,
                task=c.task,
                model=ModelRef(task=c.task, site=c.site, version=c.version),
                probability=float(probabilities[c.site][i]),
                label=0,
            )
            for c in cards
        ]
        out.append(fuse(spec, predictions, directory.expected(cards[0].task), directory.card).result)
    return out


def fused_probabilities(
    method: str,
    cards: list[ModelCard],
    probabilities: dict[str, np.ndarray],
    held_out: str,
    equal_weights: bool = False,
) -> np.ndarray:
    results = fused_results(FusionSpec(method=method), cards, probabilities, held_out, equal_weights)
    return np.array([r.probability for r in results])


@dataclass(frozen=True)
class Review:
    """What ``needs_review`` caught: records flagged, and how many of them (and of the rest) the fused label got
    wrong."""

    flagged: int
    flagged_wrong: int
    unflagged: int
    unflagged_wrong: int

    def __add__(self, other: Review) -> Review:
        return Review(
            self.flagged + other.flagged,
            self.flagged_wrong + other.flagged_wrong,
            self.unflagged + other.unflagged,
            self.unflagged_wrong + other.unflagged_wrong,
        )

    @property
    def flagged_share(self) -> float:
        return self.flagged / max(self.flagged + self.unflagged, 1)

    @property
    def wrong_when_flagged(self) -> float:
        return self.flagged_wrong / max(self.flagged, 1)

    @property
    def wrong_otherwise(self) -> float:
        return self.unflagged_wrong / max(self.unflagged, 1)


def review_of(results: list[FusedPrediction], y: np.ndarray) -> Review:
    flagged = np.array([r.needs_review for r in results], dtype=bool)
    wrong = np.array([r.label for r in results]) != y.astype(int)
    return Review(
        int(flagged.sum()), int((wrong & flagged).sum()), int((~flagged).sum()), int((wrong & ~flagged).sum())
    )


def stacked_probabilities(
    models: dict[str, TrainedModel], data: Dataset, task: TaskSpec, sites: list[str], held_out: str
) -> np.ndarray:
    """A logistic stacker on the models' logits, fitted on the other sites' held-out test splits only (where every
    one of the models is out of sample), then applied to the held-out hospital."""
    from sklearn.linear_model import LogisticRegression

    test = split(data, task.test_fraction, task.model.seed).test
    rows = np.flatnonzero(np.isin(test.sites, sites))
    features = np.column_stack([[logit(p) for p in models[s].scorer.predict(test.x[rows])] for s in sites])
    stacker = LogisticRegression(C=1.0).fit(features, test.y[rows])
    target = data.at_site(held_out)
    return stacker.predict_proba(
        np.column_stack([[logit(p) for p in models[s].scorer.predict(target.x)] for s in sites])
    )[:, 1]


def bootstrap_wins(y: np.ndarray, fused: np.ndarray, best: np.ndarray, seed: int = 7) -> tuple[float, float, float]:
    """Paired bootstrap of AUC(fused) - AUC(best single): (2.5 %, 97.5 %, share of resamples where fused >= best)."""
    rng = np.random.default_rng(seed)
    differences = []
    for _ in range(BOOTSTRAP):
        index = rng.integers(0, len(y), len(y))
        a, b = roc_auc(y[index], fused[index]), roc_auc(y[index], best[index])
        if a is not None and b is not None:
            differences.append(a - b)
    d = np.array(differences)
    return float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5)), float((d >= 0).mean())


@dataclass(frozen=True)
class HeldOut:
    hospital: str
    n: int
    positives: int
    single: dict[str, float]  # model site -> AUC on the held-out hospital
    chosen_by_validation: str  # the single model fuse's cross-site weights rank first
    fused: dict[str, float]  # method -> AUC
    difference_interval: tuple[float, float, float]  # default method vs best single, paired bootstrap
    review: Review  # needs_review with the task's own fusion settings

    @property
    def best_single(self) -> str:
        return max(self.single, key=self.single.__getitem__)

    @property
    def holds(self) -> bool:
        return self.fused["weighted_average"] >= self.single[self.best_single]


def evaluate() -> list[HeldOut]:
    task = load_tasks()["heart_disease"]
    data = heart_dataset(task)
    models = {site: train_model(task, data, site) for site in HOSPITALS}
    table = []
    for held_out in HOSPITALS:
        sites = [s for s in HOSPITALS if s != held_out]
        target = data.at_site(held_out)
        probabilities = {s: models[s].scorer.predict(target.x) for s in sites}
        cards = [card_of(models[s]) for s in sites]
        single = {s: roc_auc(target.y, probabilities[s]) for s in sites}
        fused_p = {m: fused_probabilities(m, cards, probabilities, held_out) for m in METHODS}
        default = fused_results(task.fusion, cards, probabilities, held_out)
        fused_p["equal_weights"] = fused_probabilities("weighted_average", cards, probabilities, held_out, True)
        fused_p["stacking"] = stacked_probabilities(models, data, task, sites, held_out)
        best = max(single, key=single.__getitem__)
        table.append(
            HeldOut(
                hospital=held_out,
                n=len(target),
                positives=int(target.y.sum()),
                single=single,
                chosen_by_validation=max(cards, key=lambda c: validation_auc(c, held_out) or 0.0).site,
                fused={name: roc_auc(target.y, p) for name, p in fused_p.items()},
                difference_interval=bootstrap_wins(target.y, fused_p["weighted_average"], probabilities[best]),
                review=review_of(default, target.y),
            )
        )
    return table


def markdown(table: list[HeldOut]) -> str:
    lines = [
        "| held out (n, positives) | single models (AUC) | best single | chosen by cross-site AUC | "
        "fused: weighted avg (default) | logit avg | majority vote | equal weights | stacking | "
        "fused − best, 95 % bootstrap | fused ≥ best? |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in table:
        singles = ", ".join(f"{s} {auc:.3f}" for s, auc in row.single.items())
        low, high, share = row.difference_interval
        lines.append(
            f"| {row.hospital} ({row.n}, {row.positives}) | {singles} | {row.best_single} "
            f"{row.single[row.best_single]:.3f} | {row.chosen_by_validation} "
            f"{row.single[row.chosen_by_validation]:.3f} | **{row.fused['weighted_average']:.3f}** | "
            f"{row.fused['logit_average']:.3f} | {row.fused['majority_vote']:.3f} | "
            f"{row.fused['equal_weights']:.3f} | {row.fused['stacking']:.3f} | "
            f"[{low:+.3f}, {high:+.3f}] (≥ 0 in {share:.0%}) | {'yes' if row.holds else 'no'} |"
        )
    return "\n".join(lines)


def all_reviews(table: list[HeldOut]) -> Review:
    """needs_review over every held-out hospital together."""
    return sum((row.review for row in table[1:]), table[0].review)


def review_markdown(table: list[HeldOut]) -> str:
    lines = [
        "| held out | flagged needs_review | fused label wrong when flagged | wrong when not flagged |",
        "|---|---|---|---|",
    ]
    for name, review in [*((row.hospital, row.review) for row in table), ("all four", all_reviews(table))]:
        lines.append(
            f"| {name} | {review.flagged} of {review.flagged + review.unflagged} "
            f"({review.flagged_share:.0%}) | {review.flagged_wrong} ({review.wrong_when_flagged:.0%}) | "
            f"{review.unflagged_wrong} ({review.wrong_otherwise:.0%}) |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    evaluated = evaluate()
    print(markdown(evaluated))
    print()
    print(review_markdown(evaluated))
