"""A flow whose steps, decorators and parameter defaults read its config
(tests/sdk/test_config.py): with no option it runs on `default_value`."""

import os

from ledgerflow import (
    Config,
    FlowSpec,
    Parameter,
    card,
    catch,
    config_expr,
    environment,
    resources,
    retry,
    step,
    timeout,
)

DEFAULTS = {
    "alpha": 0.5,
    "retries": 1,
    "resources": {"cpu": 2, "memory": 1024},
    "timeout": 60,
    "model": {"lr": 0.01, "layers": [8, 4], "name": "small"},
    "env": {"GREETING": "hello"},
    "card": "blank",
}


class ConfigFlow(FlowSpec):
    """Trains a model as its config says."""

    config = Config("config", default_value=DEFAULTS, help="The model and its resources.")
    alpha = Parameter("alpha", default=config_expr("config.alpha"), help="The learning rate")
    layers = Parameter("layers", default=config.model.layers)

    @retry(times=config_expr("config.retries"))
    @resources(cpu=config.resources.cpu, memory=config.resources.memory)
    @timeout(seconds=config.timeout)
    @environment(vars=config.env)
    @card(type=config.card)
    @step
    def start(self):
        self.lr = self.config.model.lr
        self.name = self.config["model"]["name"]
        self.greeting = os.environ["GREETING"]
        refused = []
        for change in (self._set_key, self._set_item, self._set_config):
            try:
                change()
            except (AttributeError, TypeError) as error:
                refused.append(type(error).__name__)
                self.last_refusal = str(error)
        self.refused = refused
        self.next(self.train)

    def _set_key(self):
        self.config.model.lr = 1.0

    def _set_item(self):
        self.config["alpha"] = 1.0

    def _set_config(self):
        self.config = {}

    @catch(var=config_expr("config.model.name + '_error'"))
    @step
    def train(self):
        self.seen = (self.alpha, list(self.layers), self.config.alpha)
        self.next(self.end)

    @step
    def end(self):
        if os.environ.get("CONFIG_FLOW_FAIL"):
            raise RuntimeError("failing as asked")
        print("trained", self.config.model.name, "at", self.alpha)


ConfigFlow()
