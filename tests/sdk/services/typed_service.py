"""A service with typed requests, HTTPError, an async endpoint, numpy and pandas
answers, and an accept(run) hook that refuses a run whose x is negative."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
from ledgerflow import HTTPError, WebServiceSpec, endpoint
from pydantic import BaseModel, Field

CUSTOMERS = {1: "Ada", 2: "Grace"}


class Address(BaseModel):
    city: str
    zip: str = Field(pattern=r"^\d{5}$", description="Five digits.")


class Features(BaseModel):
    age: int = Field(ge=0, le=150, description="Years, 0 to 150.")
    income: float
    tags: list[str] = []
    address: Address | None = None


class Score(BaseModel):
    score: float
    run: str
    tags: list[str]


class Pair(BaseModel):
    a: int
    b: int


class Lookup(BaseModel):
    id: int


class TypedService(WebServiceSpec):
    def accept(self, run):
        if self.artifacts.flow.x < 0:
            raise ValueError(f"x is {self.artifacts.flow.x}, a negative x is a broken model")
        return True

    @endpoint
    def predict(self, request: Features) -> Score:
        """Scores one customer.

        The score is the income times the run's x, less the age."""
        self.predicted = getattr(self, "predicted", 0) + 1
        score = request.income * self.artifacts.flow.x - request.age
        return Score(score=score, run=self.run.pathspec, tags=request.tags)

    @endpoint
    def calls(self):
        """How many times predict ran on this run."""
        return {"predict": getattr(self, "predicted", 0)}

    @endpoint
    def lookup(self, request: Lookup):
        if request.id not in CUSTOMERS:
            raise HTTPError(404, f"no customer {request.id}")
        if request.id == 2:
            raise HTTPError(403, {"reason": "private", "id": request.id})
        return {"name": CUSTOMERS[request.id]}

    @endpoint
    async def add(self, request: Pair):
        await asyncio.sleep(0.05)
        return {"sum": request.a + request.b, "x": self.artifacts.flow.x}

    @endpoint
    def arrays(self):
        frame = pd.DataFrame({"a": [1, 2], "b": [0.5, np.nan]})
        return {
            "count": np.int64(self.artifacts.flow.x),
            "mean": np.float32(1.5),
            "ok": np.bool_(True),
            "vector": np.array([1.0, np.nan, 2.5]),
            "matrix": np.arange(4).reshape(2, 2),
            "frame": frame,
            "column": frame["a"],
        }
