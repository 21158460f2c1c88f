"""The declarative AWS resources spec (``services/<name>/resources.yaml``): models, loading, validation.

One file, three readers: ``flotilla provision`` creates what it declares, ``flotilla iam-policy``
derives the service's least-privilege policy from it, and the Helm chart renders it as ACK
resources. The models are therefore strict (unknown keys are errors: a typo must not silently
drop a dead-letter queue) and every problem is reported as one line naming its path in the file.

The shape is documented, with a full example, in ``docs/resources.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic.alias_generators import to_camel

# Logical names become part of physical names (``<env>-<service>-<name>``), so they use the
# character set every AWS service involved accepts: SQS and SNS allow [A-Za-z0-9_-], EventBridge
# rules [.-_A-Za-z0-9], DynamoDB [.-_A-Za-z0-9]. Lower-case with hyphens fits all and Kubernetes too.
NAME_PATTERN = r"^[a-z][a-z0-9-]{0,39}$"
LogicalName = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
# Another service's resource: ``<service>/<name>``; a FIFO topic or queue adds ``.fifo``.
Reference = Annotated[str, StringConstraints(pattern=r"^([a-z][a-z0-9_-]*/)?[a-z][a-z0-9-]{0,39}(\.fifo)?$")]
ForeignReference = Annotated[
    str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]*/[a-z][a-z0-9-]{0,39}(\.fifo)?$")
]

TableAccess = Literal["read", "write", "readwrite"]
QueueAccess = Literal["consume", "send", "send-consume"]


class SpecError(ValueError):
    """The spec file is unreadable or invalid; ``str(err)`` has one line per problem, each with its path."""

    exit_code = 2

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)


class Topic(_Model):
    """An SNS topic this service owns and publishes to."""

    fifo: bool = False
    content_based_deduplication: bool = Field(False, description="FIFO only: dedup on a body hash.")


class Subscription(_Model):
    """Deliveries from a topic (own ``name`` or another's ``service/name``) into the owning queue."""

    topic: Reference
    filter_policy: dict[str, Any] | None = None
    filter_policy_scope: Literal["MessageAttributes", "MessageBody"] = "MessageAttributes"
    # On by default: the queue body is then the CloudEvent itself, not an SNS wrapper around it.
    raw_message_delivery: bool = True


class DeadLetter(_Model):
    """The queue's dead-letter queue: where a message goes after ``maxReceiveCount`` failed receives."""

    max_receive_count: int = Field(5, ge=1, le=1000)
    message_retention_seconds: int = Field(1_209_600, ge=60, le=1_209_600)


class Queue(_Model):
    """An SQS queue this service owns, with its optional DLQ and the subscriptions that feed it."""

    fifo: bool = False
    content_based_deduplication: bool = False
    visibility_timeout_seconds: int = Field(30, ge=0, le=43_200)
    message_retention_seconds: int = Field(345_600, ge=60, le=1_209_600)
    receive_wait_time_seconds: int = Field(20, ge=0, le=20)
    delay_seconds: int = Field(0, ge=0, le=900)
    dead_letter: DeadLetter | None = None
    subscriptions: list[Subscription] = Field(default_factory=list)
    access: QueueAccess = "consume"


class Key(_Model):
    name: str = Field(min_length=1, max_length=255)
    type: Literal["S", "N", "B"] = "S"


class SecondaryIndex(_Model):
    name: str = Field(min_length=3, max_length=255, pattern=r"^[a-zA-Z0-9_.-]+$")
    hash_key: Key
    range_key: Key | None = None
    projection: Literal["ALL", "KEYS_ONLY", "INCLUDE"] = "ALL"
    non_key_attributes: list[str] = Field(default_factory=list)


class Table(_Model):
    """A DynamoDB table this service owns."""

    hash_key: Key
    range_key: Key | None = None
    ttl_attribute: str | None = Field(None, min_length=1, max_length=255)
    billing_mode: Literal["PAY_PER_REQUEST", "PROVISIONED"] = "PAY_PER_REQUEST"
    read_capacity: int | None = Field(None, ge=1)
    write_capacity: int | None = Field(None, ge=1)
    global_secondary_indexes: list[SecondaryIndex] = Field(default_factory=list)
    access: TableAccess = "readwrite"


class Bus(_Model):
    """A custom EventBridge bus this service owns (and may put events on)."""


class RuleTarget(_Model):
    queue: LogicalName


class Rule(_Model):
    """An EventBridge rule on a bus, delivering matching events to queues this service owns."""

    bus: Reference = Field("default", description="'default', an own bus, or another service's bus.")
    pattern: dict[str, Any] = Field(min_length=1)
    targets: list[RuleTarget] = Field(min_length=1)
    description: str = ""
    enabled: bool = True


class Owns(_Model):
    topics: dict[LogicalName, Topic] = Field(default_factory=dict)
    queues: dict[LogicalName, Queue] = Field(default_factory=dict)
    tables: dict[LogicalName, Table] = Field(default_factory=dict)
    buses: dict[LogicalName, Bus] = Field(default_factory=dict)
    rules: dict[LogicalName, Rule] = Field(default_factory=dict)


class TableUse(_Model):
    table: ForeignReference
    access: TableAccess = "read"


class QueueUse(_Model):
    queue: ForeignReference
    access: QueueAccess = "send"


class Uses(_Model):
    """Other services' resources this service touches: only IAM permissions follow from these."""

    topics: list[ForeignReference] = Field(default_factory=list, description="Publishes to.")
    buses: list[Reference] = Field(default_factory=list, description="Puts events on ('default' allowed).")
    tables: list[TableUse] = Field(default_factory=list)
    queues: list[QueueUse] = Field(default_factory=list)


class ResourcesSpec(_Model):
    """Everything in one ``resources.yaml``."""

    version: Literal[1] = 1
    owns: Owns = Field(default_factory=Owns)
    uses: Uses = Field(default_factory=Uses)


def parse_spec(doc: Any, origin: str = "resources.yaml") -> ResourcesSpec:
    """Validate already-loaded YAML/JSON data; problems are prefixed with ``origin``."""
    if doc is None:
        doc = {}
    try:
        spec = ResourcesSpec.model_validate(doc)
    except ValidationError as err:
        raise SpecError([f"{origin}: {line}" for line in _describe(err)]) from None
    problems = check(spec)
    if problems:
        raise SpecError([f"{origin}: {line}" for line in problems])
    return spec


def load_spec(path: Path) -> ResourcesSpec:
    """Read and validate a spec file. A missing file is an empty spec: not every service uses AWS."""
    if not path.exists():
        return ResourcesSpec()
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)  # noqa: S506 - safe loader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise SpecError([f"{path}{where}: not valid YAML: {problem}"]) from None
    return parse_spec(doc, str(path))


def check(spec: ResourcesSpec) -> list[str]:
    """Cross-field rules a single model cannot see: references resolve, FIFO pairs, capacities."""
    owns = spec.owns
    problems: list[str] = []
    for name, topic in owns.topics.items():
        if topic.content_based_deduplication and not topic.fifo:
            problems.append(f"owns.topics.{name}.contentBasedDeduplication: needs fifo: true")
    for name, queue in owns.queues.items():
        problems += _check_queue(f"owns.queues.{name}", queue, owns)
    for name, table in owns.tables.items():
        problems += _check_table(f"owns.tables.{name}", table)
    for name, rule in owns.rules.items():
        problems += _check_rule(f"owns.rules.{name}", rule, owns)
    for i, bus in enumerate(spec.uses.buses):
        service, bus_name, fifo_suffix = split_reference(bus)
        if fifo_suffix or (service is None and bus_name != "default"):
            problems.append(f"uses.buses[{i}]: use 'default' or another service's 'service/name'")
    return problems


def _check_queue(at: str, queue: Queue, owns: Owns) -> list[str]:
    problems = []
    if queue.content_based_deduplication and not queue.fifo:
        problems.append(f"{at}.contentBasedDeduplication: needs fifo: true")
    for i, sub in enumerate(queue.subscriptions):
        where = f"{at}.subscriptions[{i}]"
        service, topic_name, fifo_suffix = split_reference(sub.topic)
        topic_fifo = fifo_suffix
        if service is None:
            own = owns.topics.get(topic_name)
            if own is None:
                problems.append(f"{where}.topic: no topic {topic_name!r} under owns.topics")
                continue
            if fifo_suffix:
                problems.append(f"{where}.topic: own topics are named without '.fifo'")
            topic_fifo = own.fifo
        if queue.fifo and not topic_fifo:
            problems.append(f"{where}.topic: a FIFO queue can only subscribe to a FIFO topic")
        if sub.filter_policy is not None and not sub.filter_policy:
            problems.append(f"{where}.filterPolicy: empty; leave it out to receive everything")
    return problems


def _check_table(at: str, table: Table) -> list[str]:
    problems = []
    provisioned = table.billing_mode == "PROVISIONED"
    for field, value in (("readCapacity", table.read_capacity), ("writeCapacity", table.write_capacity)):
        if provisioned and value is None:
            problems.append(f"{at}.{field}: required with billingMode PROVISIONED")
        if not provisioned and value is not None:
            problems.append(f"{at}.{field}: only with billingMode PROVISIONED")
    keys = [("hashKey", table.hash_key), ("rangeKey", table.range_key)]
    for i, index in enumerate(table.global_secondary_indexes):
        keys += [(f"globalSecondaryIndexes[{i}].hashKey", index.hash_key)]
        keys += [(f"globalSecondaryIndexes[{i}].rangeKey", index.range_key)]
        if index.non_key_attributes and index.projection != "INCLUDE":
            problems.append(
                f"{at}.globalSecondaryIndexes[{i}].nonKeyAttributes: only with projection INCLUDE"
            )
    types: dict[str, str] = {}
    for where, key in keys:
        if key is not None and types.setdefault(key.name, key.type) != key.type:
            problems.append(f"{at}.{where}: attribute {key.name!r} declared as {types[key.name]} elsewhere")
    names = [index.name for index in table.global_secondary_indexes]
    if len(set(names)) != len(names):
        problems.append(f"{at}.globalSecondaryIndexes: index names must be unique")
    return problems


def _check_rule(at: str, rule: Rule, owns: Owns) -> list[str]:
    problems = []
    service, bus_name, fifo_suffix = split_reference(rule.bus)
    if fifo_suffix:
        problems.append(f"{at}.bus: buses have no '.fifo' form")
    elif service is None and bus_name != "default" and bus_name not in owns.buses:
        problems.append(f"{at}.bus: no bus {bus_name!r} under owns.buses (or use 'default')")
    for i, target in enumerate(rule.targets):
        target_queue = owns.queues.get(target.queue)
        if target_queue is None:
            problems.append(f"{at}.targets[{i}].queue: no queue {target.queue!r} under owns.queues")
        elif target_queue.fifo:
            problems.append(f"{at}.targets[{i}].queue: FIFO queues as rule targets are not supported")
    return problems


def split_reference(reference: str) -> tuple[str | None, str, bool]:
    """``orders/events.fifo`` → ``("orders", "events", True)``; ``events`` → ``(None, "events", False)``."""
    service, _, name = reference.rpartition("/")
    fifo = name.endswith(".fifo")
    return (service or None), name.removesuffix(".fifo"), fifo


def _describe(err: ValidationError) -> list[str]:
    lines = []
    for item in err.errors(include_url=False):
        path = ""
        for part in item["loc"]:
            if part == "[key]":  # pydantic's marker for a bad dict key: the name itself is the problem
                continue
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        message = item["msg"] if "[key]" not in item["loc"] else f"bad name: {item['msg']}"
        if item["type"] == "extra_forbidden":
            message = "unknown key (check the spelling against docs/resources.md)"
        elif item["type"] == "string_pattern_mismatch" and item["loc"] and "owns" in item["loc"]:
            message = f"{message} (names are lower-case letters, digits and '-', starting with a letter)"
        elif not isinstance(item.get("input"), dict | list | None):
            message = f"{message} (got {item['input']!r})"
        lines.append(f"{path or 'top level'}: {message}")
    return lines


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys: the second ``queues:`` would silently win otherwise."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)
