"""A flow's graph as the ledger records it (the ``FlowGraph`` message): each step's kind,
transitions, resources, retry, catch and timeout. ``run --remote`` submits it for the
service to orchestrate; a local run declares it so that readers (the web UI) can draw
the steps not reached yet."""

from __future__ import annotations

from dataclasses import dataclass

from ledgerflow._decorators import Retry, step_options
from ledgerflow._graph import FlowGraph
from ledgerflow.engine.graph import DEFAULT_MAX_NUM_SPLITS
from ledgerflow.v1 import records_pb2

K = records_pb2.StepKind
_KINDS = {
    "start": K.STEP_KIND_LINEAR,
    "linear": K.STEP_KIND_LINEAR,
    "split": K.STEP_KIND_SPLIT,
    "foreach": K.STEP_KIND_FOREACH,
    "join": K.STEP_KIND_JOIN,
    "switch": K.STEP_KIND_SWITCH,
    "end": K.STEP_KIND_END,
}


@dataclass(frozen=True)
class StepDefaults:
    """What the command line sets for every step: ``--with retry`` (for the steps
    without a @retry of their own) and ``--max-num-splits`` (for each foreach)."""

    retry: Retry | None = None
    max_num_splits: int = DEFAULT_MAX_NUM_SPLITS


def graph_message(
    flow_class: type, graph: FlowGraph, defaults: StepDefaults | None = None
) -> records_pb2.FlowGraph:
    """The flow's graph with each step's decorators."""
    defaults = defaults or StepDefaults()
    message = records_pb2.FlowGraph()
    for node in graph:
        options = step_options(getattr(flow_class, node.name))
        retry = options.retry or defaults.retry
        spec = message.steps.add(
            name=node.name,
            kind=_KINDS[node.kind],
            next_steps=node.out_funcs,
            resources=records_pb2.Resources(
                cpu=options.resources.cpu,
                gpu=options.resources.gpu,
                memory_mb=options.resources.memory,
            ),
            retries=retry.times if retry else 0,
            minutes_between_retries=retry.minutes_between_retries if retry else 0,
            catch=options.catch is not None,
            catch_var=(options.catch.var or "") if options.catch else "",
            catch_print=options.catch.print_exception if options.catch else True,
            timeout_seconds=options.timeout.seconds if options.timeout else 0,
            image=options.resources.image,
        )
        if node.foreach_param:  # a gang of num_parallel nodes is unbounded, as in Metaflow
            spec.max_num_splits = defaults.max_num_splits
        spec.parallel = node.parallel
        if node.condition:
            spec.condition = node.condition
            for value, target in node.switch_cases.items():
                spec.switch_cases.add(value=value, step=target)
        if node.is_join:
            spec.in_steps.extend(node.in_funcs)
            spec.closes = graph[node.in_funcs[0]].split_parents[-1]
    return message
