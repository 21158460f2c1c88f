"""Physical names and ARNs for a spec in one environment, account and region.

The rule (documented in ``docs/resources.md``, and the Helm chart follows the same one):
``<env>-<service>-<name>``, a dead-letter queue adds ``-dlq``, FIFO topics and queues end in
``.fifo``. The environment is part of every name so one account can hold several environments,
and the service is part of it so two services may both call a queue ``events``. The account's
``default`` event bus is the one exception: it is shared and keeps its name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flotilla.resources.spec import ResourcesSpec, SpecError, split_reference

# Length limits of the services involved; checked here because only now is the env known.
_MAX_LENGTH = {"sqs": 80, "sns": 256, "dynamodb": 255, "rule": 64, "bus": 256}
DEFAULT_BUS = "default"


@dataclass(frozen=True)
class Place:
    """Where resources live: environment, region and account (the partition follows the region)."""

    env: str
    region: str
    account_id: str

    @property
    def partition(self) -> str:
        if self.region.startswith("cn-"):
            return "aws-cn"
        if self.region.startswith("us-gov-"):
            return "aws-us-gov"
        return "aws"

    def arn(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account_id}:{resource}"


def physical_name(env: str, service: str, name: str, *, fifo: bool = False, suffix: str = "") -> str:
    """``<env>-<service>-<name>[<suffix>][.fifo]``: e.g. ``prod-orders-events-dlq.fifo``."""
    return f"{env}-{service}-{name}{suffix}{'.fifo' if fifo else ''}"


@dataclass(frozen=True)
class TopicRef:
    logical: str
    name: str
    arn: str
    fifo: bool
    content_based_deduplication: bool = False


@dataclass(frozen=True)
class QueueRef:
    logical: str
    name: str
    arn: str
    fifo: bool


@dataclass(frozen=True)
class BusRef:
    logical: str
    name: str
    arn: str


@dataclass(frozen=True)
class TableRef:
    logical: str
    name: str
    arn: str


@dataclass(frozen=True)
class RuleRef:
    logical: str
    name: str
    arn: str
    bus: BusRef
    targets: tuple[QueueRef, ...]


@dataclass(frozen=True)
class SubscriptionRef:
    topic: TopicRef
    queue: QueueRef


@dataclass(frozen=True)
class Resolved:
    """Every name and ARN the spec implies, for provisioning, the IAM policy and the publishers."""

    service: str
    place: Place
    topics: dict[str, TopicRef] = field(default_factory=dict)
    queues: dict[str, QueueRef] = field(default_factory=dict)
    dead_letters: dict[str, QueueRef] = field(default_factory=dict)
    buses: dict[str, BusRef] = field(default_factory=dict)
    tables: dict[str, TableRef] = field(default_factory=dict)
    rules: dict[str, RuleRef] = field(default_factory=dict)
    subscriptions: tuple[SubscriptionRef, ...] = ()

    def topic(self, reference: str) -> TopicRef:
        """An own topic by logical name, or another service's by ``service/name[.fifo]``."""
        other, name, fifo = split_reference(reference)
        if other is None:
            return self.topics[name]
        return _topic(self.place, other, name, fifo)

    def queue(self, reference: str) -> QueueRef:
        other, name, fifo = split_reference(reference)
        if other is None:
            return self.queues[name]
        return _queue(self.place, other, name, fifo)

    def bus(self, reference: str) -> BusRef:
        other, name, _ = split_reference(reference)
        if other is None:
            return self.buses[name] if name != DEFAULT_BUS else _bus(self.place, None, DEFAULT_BUS)
        return _bus(self.place, other, name)

    def table(self, reference: str) -> TableRef:
        other, name, _ = split_reference(reference)
        if other is None:
            return self.tables[name]
        return _table(self.place, other, name)


def resolve(spec: ResourcesSpec, service: str, place: Place) -> Resolved:
    """Names and ARNs for ``spec`` in ``place``; ``SpecError`` when a name grows past an AWS limit."""
    owns = spec.owns
    topics = {
        name: _topic(place, service, name, topic.fifo, topic.content_based_deduplication)
        for name, topic in owns.topics.items()
    }
    queues = {name: _queue(place, service, name, queue.fifo) for name, queue in owns.queues.items()}
    dead_letters = {
        name: _queue(place, service, name, queue.fifo, suffix="-dlq")
        for name, queue in owns.queues.items()
        if queue.dead_letter is not None
    }
    buses = {name: _bus(place, service, name) for name in owns.buses}
    tables = {name: _table(place, service, name) for name in owns.tables}
    resolved = Resolved(service, place, topics, queues, dead_letters, buses, tables)
    rules = {}
    for name, rule in owns.rules.items():
        bus = resolved.bus(rule.bus)
        rule_name = physical_name(place.env, service, name)
        path = f"rule/{rule_name}" if bus.name == DEFAULT_BUS else f"rule/{bus.name}/{rule_name}"
        targets = tuple(queues[target.queue] for target in rule.targets)
        rules[name] = RuleRef(name, rule_name, place.arn("events", path), bus, targets)
    subscriptions = tuple(
        SubscriptionRef(resolved.topic(sub.topic), queues[queue_name])
        for queue_name, queue in owns.queues.items()
        for sub in queue.subscriptions
    )
    resolved = Resolved(service, place, topics, queues, dead_letters, buses, tables, rules, subscriptions)
    _check_lengths(resolved)
    return resolved


def _topic(place: Place, service: str, name: str, fifo: bool, cbd: bool = False) -> TopicRef:
    physical = physical_name(place.env, service, name, fifo=fifo)
    return TopicRef(name, physical, place.arn("sns", physical), fifo, cbd)


def _queue(place: Place, service: str, name: str, fifo: bool, suffix: str = "") -> QueueRef:
    physical = physical_name(place.env, service, name, fifo=fifo, suffix=suffix)
    return QueueRef(name, physical, place.arn("sqs", physical), fifo)


def _bus(place: Place, service: str | None, name: str) -> BusRef:
    physical = DEFAULT_BUS if service is None else physical_name(place.env, service, name)
    return BusRef(name, physical, place.arn("events", f"event-bus/{physical}"))


def _table(place: Place, service: str, name: str) -> TableRef:
    physical = physical_name(place.env, service, name)
    return TableRef(name, physical, place.arn("dynamodb", f"table/{physical}"))


def _check_lengths(resolved: Resolved) -> None:
    named: list[tuple[str, str, str]] = [
        *((f"owns.topics.{t.logical}", t.name, "sns") for t in resolved.topics.values()),
        *((f"owns.queues.{q.logical}", q.name, "sqs") for q in resolved.queues.values()),
        *((f"owns.queues.{q.logical}.deadLetter", q.name, "sqs") for q in resolved.dead_letters.values()),
        *((f"owns.tables.{t.logical}", t.name, "dynamodb") for t in resolved.tables.values()),
        *((f"owns.buses.{b.logical}", b.name, "bus") for b in resolved.buses.values()),
        *((f"owns.rules.{r.logical}", r.name, "rule") for r in resolved.rules.values()),
    ]
    problems = [
        f"{where}: physical name {name!r} is longer than {_MAX_LENGTH[kind]} characters; shorten the name"
        for where, name, kind in named
        if len(name) > _MAX_LENGTH[kind]
    ]
    if problems:
        raise SpecError(problems)
