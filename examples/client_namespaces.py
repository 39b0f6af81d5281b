"""The talk's client sample: find runs again by namespace.

USERNAME=savin python examples/branch_flow.py run --tag unsampled_model
USERNAME=david python examples/branch_flow.py run --tag sampled_model
python examples/client_namespaces.py
"""

from ledgerflow import Flow, namespace

# Access Savin's runs
namespace("user:savin")
run = Flow("MyFlow").latest_run
print(run.id, sorted(run.user_tags))

# Access David's runs
namespace("user:david")
run = Flow("MyFlow").latest_run
print(run.id, sorted(run.user_tags))

# Access everyone's runs
namespace(None)
run = Flow("MyFlow").latest_run
print(run.id)
