"""What the bot knows about poc-idp's inputs: the variables it fills from a request, the values only
the requester can give (with the labels the thread asks for them by), and the Fargate cpu/memory rules
poc-idp checks per container (plus AWS's task sizes for the sum over a service's containers).
"""

from __future__ import annotations

from collections.abc import Mapping

from core.models import DeploymentRequest
from core.tfvars.type_constraints import is_number

# The placeholder of poc-idp's sample tfvars files.
PLACEHOLDER = "CHANGE_ME_PLEASE"

# Variables the bot fills from the request; a placeholder left in one of them is the bot's fault.
BOT_OWNED_VARIABLES = (
    "account_id",
    "region",
    "application",
    "environment",
    "vpc_cidr_block",
    "additional_tags",
)

# Human labels for values only the requester can give (asked for in the Slack thread).
USER_VALUE_LABELS: dict[str, tuple[str, str]] = {
    "sns_monitoring_recepients_email_list": (
        "Alarm notification emails",
        "One or more email addresses that receive the monitoring alarms (SNS).",
    ),
    "route53_dns_name": (
        "Base DNS domain",
        "The Route53 domain the services are published under, e.g. example.com.",
    ),
    "route53_existing_certificate_arn": (
        "ACM certificate ARN for the load balancer",
        "An ACM certificate ARN in the deployment's region.",
    ),
    "route53_existing_cloudfront_certificate_arn": (
        "ACM certificate ARN for CloudFront",
        "An ACM certificate ARN in us-east-1.",
    ),
    "bastion_ssh_key_name": ("Bastion SSH key pair", "The name of an existing EC2 key pair."),
}

SNS_EMAILS = "sns_monitoring_recepients_email_list"


# poc-idp's per-container cpu -> memory pairs (the same rule as the validation of `ecs_services` in
# poc-idp's variables.tf; see tests/tfrepo/variables.tf).
CONTAINER_PAIRS: dict[int, tuple[int, ...]] = {
    256: (512, 1024),
    512: (1024, 2048),
    1024: (2048, 3072, 4096),
    2048: tuple(range(4096, 8192 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
}
# AWS Fargate task sizes (the sum over the containers must be one of these).
TASK_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}


def values_for_request(
    request: DeploymentRequest, extra: Mapping[str, object] | None = None
) -> dict[str, object]:
    """The tfvars values a request decides, plus those decided by earlier steps (`extra` wins)."""
    values: dict[str, object] = {
        "account_id": request.account_id,
        "region": request.region,
        "application": request.application,
        "environment": request.environment,
        "additional_tags": dict(request.additional_tags),
        "vpc_cidr_block": request.vpc_cidr_block,
    }
    values.update(extra or {})
    return values


def _pairs_text(table: Mapping[int, tuple[int, ...]], cpu: int) -> str:
    options = table[cpu]
    if len(options) > 3:
        step = options[1] - options[0]
        return f"{options[0]}-{options[-1]} in steps of {step}"
    return ", ".join(str(m) for m in options)


def fargate_problems(service: str, definition: object) -> list[str]:
    """Per-container pairs (poc-idp's rule) and the summed task size (AWS's rule) of one service."""
    if not isinstance(definition, dict) or not isinstance(definition.get("container_definitions"), list):
        return []
    problems: list[str] = []
    total_cpu = total_memory = 0
    complete = True
    for index, container in enumerate(definition["container_definitions"]):
        if not isinstance(container, dict):
            complete = False
            continue
        name = container.get("name") if isinstance(container.get("name"), str) else f"#{index + 1}"
        cpu, memory = container.get("cpu"), container.get("memory")
        if not (is_number(cpu) and is_number(memory)):
            complete = False
            continue
        cpu_n, memory_n = float(cpu), float(memory)  # type: ignore[arg-type]
        where = f'ecs_services["{service}"] container "{name}"'
        if not (cpu_n.is_integer() and memory_n.is_integer()):
            problems.append(f"{where}: cpu and memory must be whole numbers (got {cpu}/{memory}).")
            complete = False
            continue
        c, m = int(cpu_n), int(memory_n)
        total_cpu, total_memory = total_cpu + c, total_memory + m
        if c not in CONTAINER_PAIRS:
            problems.append(
                f"{where}: cpu {c} is not a Fargate cpu value (use {', '.join(map(str, CONTAINER_PAIRS))})."
            )
        elif m not in CONTAINER_PAIRS[c]:
            problems.append(
                f"{where}: cpu {c} with memory {m} is not a valid Fargate pair"
                f" (with cpu {c} use memory {_pairs_text(CONTAINER_PAIRS, c)})."
            )
    containers = definition["container_definitions"]
    if complete and containers and not problems and total_memory not in TASK_SIZES.get(total_cpu, ()):
        fix = (
            f"cpu {total_cpu} takes memory {_pairs_text(TASK_SIZES, total_cpu)}"
            if total_cpu in TASK_SIZES
            else f"the task cpu must be one of {', '.join(map(str, TASK_SIZES))}"
        )
        problems.append(
            f'ecs_services["{service}"]: the task size (sum over its {len(containers)} containers) is'
            f" cpu {total_cpu} / memory {total_memory}, which is not a Fargate task size ({fix})."
        )
    return problems
