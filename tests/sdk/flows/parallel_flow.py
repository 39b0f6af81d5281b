"""A @parallel gang, as distributed training uses one: num_parallel=3 starts three
nodes together; node 0 listens on current.parallel.main_ip and the others connect to
it, so the run can only succeed when all three run at once and reach the main node."""

import os
import socket
import time

from ledgerflow import FlowSpec, Parameter, current, parallel, resources, step

WAIT_SECONDS = 60


def port_for(run_id: str) -> int:
    """A port every node of the gang derives alike from the run id, below the kernel's
    ephemeral range: a port in that range can already be any socket's local end (a test's
    service, a connection), which once made node 0's bind fail with EADDRINUSE."""
    low = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            low = int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    first = 10000
    return first + int(run_id) % max(low - first, 1000)


def gather(host: str, port: int, expected: int) -> list[int]:
    """Node 0: accepts one hello (a node index) from each other node."""
    heard = []
    with socket.create_server((host, port)) as server:
        server.settimeout(WAIT_SECONDS)
        while len(heard) < expected:
            connection, _ = server.accept()
            with connection:
                heard.append(int(connection.recv(16).decode()))
    return sorted(heard)


def hello(host: str, port: int, index: int) -> None:
    """Another node: says its index to node 0, once node 0 listens."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            with socket.create_connection((host, port), timeout=5) as connection:
                connection.sendall(str(index).encode())
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class ParallelFlow(FlowSpec):
    port = Parameter("port", default=0, type=int, help="where node 0 listens (0: from the run id)")
    nodes = Parameter("nodes", default=3, type=int, help="how many nodes the gang has")
    fail_node = Parameter("fail_node", default=-1, type=int,
                          help="this node fails before it says hello (-1: none)")  # fmt: skip

    @step
    def start(self):
        self.next(self.train, num_parallel=self.nodes)

    # Small, so that a gang of three fits a test executor (2 cpus, 4 GB) at once.
    @resources(cpu=0.5, memory=1024)
    @parallel
    @step
    def train(self):
        node = current.parallel
        port = self.port or port_for(current.run_id)
        if node.node_index == self.fail_node:
            raise RuntimeError(f"node {node.node_index} fails, as asked")
        if node.node_index == 0:
            self.heard = gather(node.main_ip, port, node.num_nodes - 1)
        else:
            hello(node.main_ip, port, node.node_index)
            self.heard = []
        self.node, self.num_nodes = node.node_index, node.num_nodes
        self.main_ip, self.is_parallel = node.main_ip, current.is_parallel
        # Whether whoever started the gang said where node 0 is (else: the default).
        self.told_main_ip = "LEDGERFLOW_PARALLEL_MAIN_IP" in os.environ
        self.next(self.join)

    @step
    def join(self, inputs):
        self.nodes_seen = [i.node for i in inputs]
        self.heard = inputs[0].heard
        self.told_main_ip = [i.told_main_ip for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        print("nodes", self.nodes_seen, "node 0 heard", self.heard)


if __name__ == "__main__":
    ParallelFlow()
