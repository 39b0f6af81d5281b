"""R values in Python and Python values in R (issue 30's conversions and warnings), on
the embedded ledger and through the metadata service: each row of r_client/README.md's
round-trip table is checked here."""

from __future__ import annotations

import datetime
import math

import numpy as np
import pandas as pd
import pytest
from conftest import FlowEnv
from ledgerflow import Flow, Run
from ledgerflow.datastore.content import RObject
from test_r_client import R_FLOWS, r_eval, r_flow, rscript

pytestmark = pytest.mark.slow


def test_r_values_read_in_python_and_again_in_r(flow_env: FlowEnv) -> None:
    pathspec = r_flow(flow_env, "conversions")
    run = Run(pathspec)
    data = run["start"].task.data
    numbers = data.numbers
    assert numbers[0] == 1.5 and numbers[1] is None and math.isnan(numbers[2])
    assert numbers[3:] == [math.inf, -math.inf]
    assert data.ints == [1, None, 3] and data.flags == [True, None, False]
    assert data.words == ["a", None, "c"] and data.one == 2.5
    assert data.named == {"x": 1.0, "y": 2.0}
    assert data.levels == ["low", None, "high"]
    assert data.days == [datetime.date(2026, 11, 27), None]
    stamp = data.stamps[0]
    assert stamp == pd.Timestamp("2026-11-27 09:30", tz="America/New_York")
    assert str(stamp.tz) == "America/New_York" and data.stamps[1] is None
    assert data.settings == {"alpha": 0.5, "name": "x"}
    # Repeated names: (name, value) pairs in order, not a dict that keeps the last.
    assert data.repeated == [("a", 1.0), ("a", 2.0), ("b", "three")]
    assert data.unnamed == [1.0, "two"]
    assert isinstance(data.matrix, np.ndarray) and data.matrix.tolist() == [[1, 3, 5], [2, 4, 6]]
    holes = data.holes  # NA masked, NaN kept
    assert isinstance(holes, np.ma.MaskedArray) and holes.mask.tolist() == [
        [False, False], [True, False]
    ]  # fmt: skip
    assert holes[0, 0] == 1.0 and math.isnan(holes[0, 1]) and holes[1, 1] == 4.0
    labelled = data.labelled
    assert isinstance(labelled, pd.DataFrame)
    assert list(labelled.index) == ["r1", "r2"] and list(labelled.columns) == ["x", "y"]
    assert labelled.loc["r2", "x"] == 2.0 and labelled.loc["r1", "y"] == 3.0
    assert data.cube.shape == (2, 3, 4) and data.cube[1, 2, 3] == 24 and data.cube[0, 1, 0] == 3
    assert data.named_cube.shape == (2, 2, 2) and data.named_cube[1, 1, 1] == 8  # no dimnames
    assert isinstance(data.counts, RObject)  # a table: a classed array, R's own
    assert data.bytes == b"\x00\x01\xff"
    # complex: NA (either part R's NA) None, a NaN part stays NaN; a matrix masked where NA
    z = data.complex
    assert z[0] == 1 + 2j and z[1] is None and math.isnan(z[2].real) and z[2].imag == 1
    zm = data.complex_matrix
    assert isinstance(zm, np.ma.MaskedArray) and zm.mask.tolist() == [[False, False], [True, False]]
    assert zm[0, 0] == 1 + 1j and zm[0, 1] == 3 and zm[1, 1] == 4j
    frame = data.frame
    assert list(frame.index) == ["ada", "bob", "cy"]
    assert str(frame["n"].dtype) == "Float64"  # NaN and NA both kept, apart
    n, k = frame["n"].tolist(), frame["k"].tolist()
    assert n[0] == 1.0 and math.isnan(n[1]) and n[2] is pd.NA
    assert k[:2] == [1, 2] and k[2] is pd.NA
    assert isinstance(data.plain_frame.index, pd.RangeIndex)
    assert data.nothing is None
    assert isinstance(data.square, RObject)  # a function: R's own, for R only
    end = run["end"].task.data
    assert end.not_identical == [] and end.all_identical is True and end.squared == 9.0
    # R reads them back exactly (R's own serialization) through the client too.
    code = (
        f'x <- get_artifact("{pathspec}/start", "repeated"); cat(names(x), "|"); '
        f'm <- get_artifact("{pathspec}/start", "labelled"); cat(dimnames(m)[[1]], "|"); '
        f'f <- get_artifact("{pathspec}/start", "square"); cat(f(4))'
    )
    assert r_eval(flow_env, code) == "a a b |r1 r2 |16"


def test_python_values_read_in_r(flow_env: FlowEnv) -> None:
    flow_env.run("python_values_flow", "run")
    run = Flow("PythonValuesFlow").latest_run
    assert run is not None
    show = (
        f'show <- function(name) {{ x <- get_artifact("{run.pathspec}/start", name); '
        'control <- c("keepNA", "keepInteger", "niceNames", "showAttributes"); '
        'cat(name, paste(deparse(x, control = control), collapse = ""), "\\n") }; '
    )
    names = ["indexed", "plain", "series", "grid", "cube", "holes", "floats", "column", "blob",
             "members", "mixed"]  # fmt: skip
    out = r_eval(flow_env, show + "; ".join(f'show("{n}")' for n in names))
    said = dict(line.strip().split(" ", 1) for line in out.strip().splitlines())
    assert said["indexed"] == (
        'structure(list(n = c(1.5, 2.5)), row.names = c("ada", "bob"), class = "data.frame")'
    )
    assert said["plain"] == 'structure(list(n = 1:2), row.names = c(NA, -2L), class = "data.frame")'
    assert said["series"] == 'structure(c(x = 1, y = 2), name = "weights")'
    assert said["grid"] == "structure(c(0L, 3L, 1L, 4L, 2L, 5L), dim = 2:3)"
    assert said["cube"].startswith("structure(c(0, 12, 4, 16, 8, 20, 1,")
    assert said["cube"].endswith("dim = 2:4)")
    assert said["holes"] == "c(1, NaN, NA)"  # masked: NA; NaN stays NaN
    assert said["floats"] == "c(1, NaN, NA)"
    assert said["column"] == "c(1, NaN, NA)"  # a Float64 Series: <NA> is NA, NaN is NaN
    assert said["blob"] == "as.raw(c(0x00, 0x01, 0xff))"
    assert said["members"] == "1:3"  # a set: sorted, a vector where its members are alike
    assert said["mixed"] == 'list(1L, "a")'


def test_unrestorable_values_and_a_foreach_over_a_frame_are_said(flow_env: FlowEnv) -> None:
    pathspec = r_flow(flow_env, "unrestorable")
    run = Run(pathspec)
    assert run.successful
    stderr = run["start"].task.stderr
    assert "Warning in start: self$con is a connection, which cannot be restored in another " in (
        stderr
    )
    assert "Warning in start: self$holder holds an external pointer, which cannot be" in stderr
    assert "self$fine" not in stderr
    assert (
        'Warning in start: foreach = "table" is a data.frame: one task per column (2 columns), '
        "self$input being the column"
    ) in stderr
    assert "for one task per row, foreach over split(table, seq_len(nrow(table)))" in stderr
    assert sorted(run["join"].task.data.totals) == [6, 15]


def test_a_join_without_join_true_gets_r_advice(flow_env: FlowEnv) -> None:
    result = rscript(flow_env, str(R_FLOWS / "no_join.R"), "run", check=False)
    assert result.returncode == 1
    assert (
        "step 'meet' is reached from a, b: make it a join, as in step(step = \"meet\", "
        "r_function = function(self, inputs) { ... }, join = TRUE)"
    ) in result.stderr
    assert "def join" not in result.stdout + result.stderr
