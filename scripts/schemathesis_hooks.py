"""Teaches schemathesis the string formats drswitch's API document names
that JSON Schema does not know (scripts/schemathesis.sh loads this)."""

from hypothesis import strategies as st

import schemathesis

# A five-field cron expression (minute hour day-of-month month day-of-week):
# each field `*`, a value, a range, a step, or a list of values.
_FIELDS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]


def _field(lo, hi):
    value = st.integers(lo, hi).map(str)
    rng = st.tuples(st.integers(lo, hi), st.integers(lo, hi)).map(lambda t: f"{min(t)}-{max(t)}")
    step = st.integers(1, hi - lo).map(lambda s: f"*/{s}")
    lst = st.lists(st.integers(lo, hi), min_size=2, max_size=4, unique=True).map(lambda v: ",".join(map(str, v)))
    return st.one_of(st.just("*"), value, rng, step, lst)


schemathesis.openapi.format("cron", st.tuples(*(_field(lo, hi) for lo, hi in _FIELDS)).map(" ".join))
