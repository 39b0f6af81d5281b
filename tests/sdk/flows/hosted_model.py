"""The model class the hosting tests keep in a module beside their flow (model_flow.py):
serving it needs this module importable, as it is in the flow's tasks."""

VERSION = 1


class Model:
    def __init__(self, factor: int) -> None:
        self.factor = factor

    def predict(self, x: int) -> dict[str, int]:
        return {"y": x * self.factor, "version": VERSION}
