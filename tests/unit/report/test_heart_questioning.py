"""research/questioning/heart_questioning.py on a small, fast configuration (logistic models, one search point):
sane numbers, and never a question for an input the record has (the script asserts it on every question)."""

from research.questioning.heart_questioning import HOSPITALS, MAX_QUESTIONS, evaluate, table


def test_the_questioning_evaluation_runs_and_mostly_reaches_the_full_records_decision() -> None:
    tallies = evaluate(seed=7, family="logistic", trials=1, sites=("cleveland", "hungary", "pooled"))
    assert list(tallies) == list(HOSPITALS)
    cases = sum(t.cases for t in tallies.values())
    assert cases > 100  # held-out patients with thallium, vessels or slope recorded
    for t in tallies.values():
        assert t.cases > 0 and sum(t.asked.values()) == t.cases
        assert set(t.asked) <= set(range(MAX_QUESTIONS + 2))
        assert t.same_within_three <= t.cases and t.same_at_end <= t.cases
    assert sum(t.same_at_end for t in tallies.values()) / cases >= 0.9
    assert sum(t.same_within_three for t in tallies.values()) / cases >= 0.8
    assert "| all |" in table(tallies)
