"""The local test stack for vault-stork's end-to-end tests.

``Stack`` starts moto (EC2, IAM and STS), an OpenBao dev server with the AWS
auth plugin, and a fake instance metadata service, all on 127.0.0.1.
"""

from .imds import ImdsServer, InstanceMetadata
from .openbao import OpenBaoClient, OpenBaoError
from .process import StackError
from .stack import CUSTOM_MOUNT, DEFAULT_MOUNT, Stack

__all__ = [
    "CUSTOM_MOUNT",
    "DEFAULT_MOUNT",
    "ImdsServer",
    "InstanceMetadata",
    "OpenBaoClient",
    "OpenBaoError",
    "Stack",
    "StackError",
]
