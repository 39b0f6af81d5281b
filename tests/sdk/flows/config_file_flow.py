"""Configs from files (tests/sdk/test_config.py): `settings` from settings.json in the
current folder by default (or a .toml file given with --config), `limits` required and
read by a parser named by text; flow decorators that read them."""

from ledgerflow import Config, FlowSpec, config_expr, project, resources, schedule, step, trigger


@trigger(event=config_expr("settings.event"))
@schedule(cron=config_expr("settings.cron"))
@project(name=config_expr("settings.project"))
class ConfigFileFlow(FlowSpec):
    settings = Config("settings", default="settings.json")
    limits = Config("limits", required=True, parser="config_parsers.key_values")

    @resources(memory=config_expr("int(limits.memory_mb) * 2"))
    @step
    def start(self):
        self.greeting = self.settings.greeting
        self.memory_mb = self.limits.memory_mb
        self.next(self.end)

    @step
    def end(self):
        pass


ConfigFileFlow()
