"""Does questioning reach the full record's decision in at most 3 questions? (issue 20, "Done when")

The four UCI heart-disease hospitals' models and the pooled one are trained by train's own trainer
(``services.train.training.train_model``) on their training splits, with the card's distributions. For every
held-out patient (train's test split, which no model saw) who has at least one of thallium scan, major vessels and
ST slope recorded, all three are removed; questioning (``services.report.questioning.assess``) asks its top-ranked
input, answered from the patient's true record ("unknown" where the record truly lacks it), until it is done or has
nothing left to ask. The final decision is compared with the fused decision on the record as recorded. The models
are weighted as fuse weighs them for the patient's hospital (``cross_site_weights``); the distributions are the
pooled model's.

Run ``.venv/bin/python -m research.questioning.heart_questioning [SEED ...]`` (default seed 7) for the table in
docs/questioning.md; ``tests/unit/research/test_heart_questioning.py`` runs a small configuration.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from research.fuse.heart_evaluation import HOSPITALS, card_of, heart_dataset
from services.fuse.fusion import cross_site_weights
from services.report.inputs import input_groups
from services.report.questioning import ServedModel, apply_answer, assess, input_id
from services.train.dataset import POOLED, split
from services.train.training import train_model
from shared.fusion import Vote, combine
from shared.schemas.models import ModelRef
from shared.tasks import TaskSpec, load_tasks

REMOVED = ("thallium_normal", "major_vessels", "st_slope_upsloping")  # the ids of thallium, vessels, ST slope
MAX_QUESTIONS = 3


@dataclass
class Tally:
    cases: int = 0
    same_within_three: int = 0
    same_at_end: int = 0
    asked: Counter[int] = field(default_factory=Counter)

    @property
    def share(self) -> float:
        return self.same_within_three / max(self.cases, 1)


def _answer(task: TaskSpec, full: list[float | None], name: str) -> object:
    group = next(g for g in input_groups(task) if input_id(g) == name)
    values = [full[i] for i in group.indices]
    if any(v is None for v in values):
        return None
    if group.kind == "numeric":
        return values[0]
    if group.kind == "flag":
        return "yes" if values[0] else "no"
    return next(s.equals for s, v in zip(group.specs, values, strict=True) if v)


def evaluate(seed: int = 7, family: str | None = None, trials: int | None = None, sites=(*HOSPITALS, POOLED)):
    task = load_tasks()["heart_disease"]
    updates = {"seed": seed}
    if family:
        updates["family"] = family
    if trials:
        updates["trials"] = trials
    task = task.model_copy(update={"model": task.model.model_copy(update=updates)})
    data = heart_dataset(task)
    models = {site: train_model(task, data, site) for site in sites}
    cards = [card_of(models[s]) for s in sites]
    distributions = models[POOLED].distributions if POOLED in models else models[sites[0]].distributions
    test = split(data, task.test_fraction, seed, validation_fraction=0.0).test
    removed = [i for g in input_groups(task) if input_id(g) in REMOVED for i in g.indices]
    tallies: dict[str, Tally] = {h: Tally() for h in HOSPITALS}
    for row, hospital in zip(test.x, test.sites, strict=True):
        if np.isnan(row[removed]).all():
            continue
        weights = cross_site_weights(cards, hospital)
        served = [
            ServedModel(ModelRef(task=task.name, site=s, version="eval"), w, 0.5, models[s].scorer.predict)
            for s, w in zip(sites, weights, strict=True)
        ]
        full = [None if np.isnan(v) else float(v) for v in row]
        x = np.array([row], dtype=np.float32)
        truth = combine(
            task.fusion.method,
            [Vote(float(m.score(x)[0]), m.weight, m.threshold) for m in served],
        ).label
        features = [None if i in removed else v for i, v in enumerate(full)]
        unknown: set[str] = set()
        asked, label_at_three = 0, None
        while True:
            result = assess(task, features, served, task.fusion.method, distributions, unknown=unknown)
            if asked <= MAX_QUESTIONS and result.done:
                label_at_three = result.label
            if result.done:
                break
            name = result.ranked[0].question.input
            group = next(g for g in input_groups(task) if input_id(g) == name)
            assert any(features[i] is None for i in group.indices), f"asked for {name}, which the record has"
            answer = _answer(task, full, name)
            if answer is None:
                unknown.add(name)
            features = apply_answer(task, features, name, answer)
            asked += 1
        tally = tallies[hospital]
        tally.cases += 1
        tally.asked[min(asked, MAX_QUESTIONS + 1)] += 1
        tally.same_within_three += label_at_three == truth
        tally.same_at_end += result.label == truth
    return tallies


def table(tallies: dict[str, Tally]) -> str:
    lines = ["| hospital | cases | same decision, ≤ 3 questions | same at the end | asked 0 / 1 / 2 / 3 / >3 |"]
    lines.append("|---|---|---|---|---|")
    total = Tally()
    for t in tallies.values():
        total.cases += t.cases
        total.same_within_three += t.same_within_three
        total.same_at_end += t.same_at_end
        total.asked.update(t.asked)
    for hospital, t in [*tallies.items(), ("all", total)]:
        counts = " / ".join(str(t.asked.get(k, 0)) for k in range(MAX_QUESTIONS + 2))
        lines.append(f"| {hospital} | {t.cases} | {t.same_within_three} ({t.share:.1%}) | {t.same_at_end} | {counts} |")
    return "\n".join(lines)


if __name__ == "__main__":
    for s in [int(a) for a in sys.argv[1:]] or [7]:
        print(f"seed {s}")
        print(table(evaluate(s)))
