"""Long R vectors and data.frames of numbers cross between R and Python through their
memory (issue 30's speed goals): an R step stores them as columns (no R serialization,
no element-by-element conversion) and the next R step, the R client and Python read
them back exactly, NA apart from NaN; long numpy arrays and pandas columns reach R the
same way; complex numbers, an index's name and a MultiIndex convert (r_client/README.md's
table). Real R through rpy2, on the embedded ledger and through the metadata service."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from conftest import FlowEnv
from ledgerflow import Flow, Run
from ledgerflow.datastore.content import R_SERIALIZER
from ledgerflow.datastore.safe_load import load_data_only
from test_r_client import R_FLOWS, r_eval, r_flow

pytestmark = pytest.mark.slow

N = 20000
COLUMNAR = ["doubles", "ints", "sequence", "flags", "named", "frame", "zeros"]
SERIALIZED = ["classed", "labelled", "words", "short", "attributed", "listed"]


def stored_as(run: Run, name: str) -> str:
    """How the start step's artifact is stored: "columns" or "rds" (R's serialization)."""
    artifact = run["start"].task[name]
    record = artifact._record
    assert record.serializer == R_SERIALIZER
    store = artifact._store
    assert store is not None
    _, _, has_python, _ = store.load_r(record.content_key)
    return "columns" if has_python == "columns" else "rds"


def test_long_r_vectors_and_frames_are_stored_as_columns_and_read_back_exactly(
    flow_env: FlowEnv,
) -> None:
    pathspec = r_flow(flow_env, "long_values")
    run = Run(pathspec)
    assert run.successful
    assert {name: stored_as(run, name) for name in COLUMNAR + SERIALIZED} == {
        **dict.fromkeys(COLUMNAR, "columns"), **dict.fromkeys(SERIALIZED, "rds")
    }  # fmt: skip
    # The next R step read every one of them identical, NA still NA and NaN still NaN.
    end = run["end"].task.data
    assert end.not_identical == []
    assert end.na_kinds == [True, True, True, True, True]
    # Python reads what the README's table says, as it did when they were converted at once.
    data = run["start"].task.data
    doubles = data.doubles
    assert len(doubles) == N + 5 and doubles[:2] == [1.5, 1.5]
    assert doubles[N] is None and math.isnan(doubles[N + 1])
    assert doubles[N + 2 :] == [math.inf, -math.inf, 0.0]
    assert math.copysign(1, doubles[-1]) == -1  # -0 stays -0
    assert all(type(x) is float for x in doubles[:N])
    assert data.ints[:3] == [1, 2, 3] and data.ints[N:] == [None, -5]
    assert all(type(x) is int for x in data.ints[:N])
    assert data.sequence == list(range(1, N + 1))
    assert data.flags[:4] == [True, False, None, True] and len(data.flags) == 15000
    assert data.named["n1"] == 1.0 and data.named[f"n{N}"] == float(N) and len(data.named) == N
    assert data.zeros == [0.0] * N
    frame = data.frame
    assert isinstance(frame, pd.DataFrame) and isinstance(frame.index, pd.RangeIndex)
    assert list(frame.columns) == ["x", "k", "f", "nan"]
    assert [str(t) for t in frame.dtypes] == ["float64", "Int64", "boolean", "Float64"]
    assert frame["x"].iloc[0] == 0.5 and math.isnan(frame["x"].iloc[-1])
    assert frame["k"].iloc[0] == 1 and frame["k"].iloc[-1] is pd.NA
    assert bool(frame["f"].iloc[0]) and frame["f"].iloc[-1] is pd.NA
    nan = frame["nan"].tolist()  # a true NaN: Float64, NaN and NA kept apart
    assert math.isnan(nan[0]) and nan[1] == 2.0 and nan[-1] is pd.NA
    assert list(data.labelled.index[:2]) == ["r1", "r2"]
    assert list(data.words["w"][:2]) == ["a", "a"]
    assert isinstance(data.classed, pd.DataFrame) and len(data.classed) == N
    assert data.attributed[:2] == [1.0, 2.0]  # its units live on in R only
    assert data.short[0] == 1.5 and data.short[1] is None and math.isnan(data.short[2])
    assert data.listed[:2] == [1, 2]
    # The web UI's data-only loader reads them too (no code named in the stored value).
    artifact = run["start"].task["frame"]
    assert artifact._store is not None
    previewed = load_data_only(artifact._store, artifact._record.content_key, R_SERIALIZER)
    assert previewed.equals(frame)
    # The R client reads each back identical: columns and long serializations from the
    # datastore's own file, short ones inline.
    names = COLUMNAR + SERIALIZED
    code = (
        # The script's values: sourced with run() only noting the flow, as the runtime
        # loads it.
        f"options(ledgerflow.load_only = TRUE); e <- new.env(); "
        f'source("{R_FLOWS / "long_values.R"}", local = e); made <- e$long_values(); '
        f"for (name in c({', '.join(repr(n) for n in names)})) "
        f'cat(name, identical(get_artifact("{pathspec}/start", name), made[[name]]), "\\n")'
    )
    said = dict(line.split() for line in r_eval(flow_env, code).strip().splitlines())
    assert said == dict.fromkeys(names, "TRUE")


def test_python_values_read_in_r_complex_indexes_and_long_arrays(flow_env: FlowEnv) -> None:
    flow_env.run("python_values_flow", "run")
    run = Flow("PythonValuesFlow").latest_run
    assert run is not None
    show = (
        f'show <- function(name) {{ x <- get_artifact("{run.pathspec}/start", name); '
        'control <- c("keepNA", "keepInteger", "niceNames", "showAttributes"); '
        'cat(name, paste(deparse(x, control = control), collapse = ""), "\\n") }; '
    )
    names = ["named_index", "multi", "complex_one", "complex_list", "complex_array"]
    out = r_eval(flow_env, show + "; ".join(f'show("{n}")' for n in names))
    said = dict(line.strip().split(" ", 1) for line in out.strip().splitlines())
    # A named index and a MultiIndex become the first columns (as reset_index() makes
    # them); the rows are R's own 1..n.
    assert said["named_index"] == (
        'structure(list(who = c("a", "b"), n = c(1.5, 2.5)), row.names = c(NA, -2L), '
        'class = "data.frame")'
    )
    assert said["multi"] == (
        'structure(list(k = c("a", "b"), level_1 = 1:2, n = c(1.5, 2.5)), '
        'row.names = c(NA, -2L), class = "data.frame")'
    )
    assert said["complex_one"] == "1+2i"
    assert said["complex_list"] == "c(1+2i, NA, complex(real=NaN, imaginary=1))"
    assert said["complex_array"] == "c(1+2i, NA, 4+0i)"
    # Long arrays and pandas columns: NaN stays NaN, masked and <NA> are NA.
    code = (
        f'x <- get_artifact("{run.pathspec}/start", "long_floats"); '
        "cat(length(x), x[2], is.nan(x[6]), is.na(x[8]) && !is.nan(x[8]), x[40000], '|'); "
        f'f <- get_artifact("{run.pathspec}/start", "long_ints"); '
        "cat(nrow(f), typeof(f$k), typeof(f$b), f$k[1:2], f$b[1:2], sum(is.na(f$k)))"
    )
    assert (
        r_eval(flow_env, code)
        == "40000 1 TRUE TRUE 39999 |20000 integer logical 1 NA TRUE NA 10000"
    )
    # complex numbers in R identical to R's own: NA is NA_complex_.
    same = r_eval(
        flow_env,
        f'x <- get_artifact("{run.pathspec}/start", "complex_list"); '
        "cat(identical(x, c(1+2i, NA, complex(real = NaN, imaginary = 1))))",
    )
    assert same == "TRUE"
