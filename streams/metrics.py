"""Prometheus metrics of one running stack, in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_in = Counter("fengqiao_events_in", "Input messages consumed, by source topic",
                                 ["topic"], registry=r)
        self.events_valid = Counter("fengqiao_events_valid", "Input messages that passed validation",
                                    ["topic"], registry=r)
        self.duplicates = Counter("fengqiao_events_duplicate",
                                  "Input suppressed as a duplicate (same publisher and event id)",
                                  ["topic"], registry=r)
        self.events_dead_lettered = Counter("fengqiao_events_dead_lettered",
                                            "Input sent to the dead-letter topic, by reason",
                                            ["topic", "reason"], registry=r)
        self.signals = Counter("fengqiao_signals", "Signals raised (new) or updated, by rule and level",
                               ["rule", "level", "kind"], registry=r)
        self.notices = Counter("fengqiao_notices", "Centre notices sent, by channel and centre level",
                               ["channel", "centre_level"], registry=r)
        self.dispatch_actions = Counter("fengqiao_dispatch_actions", "Centre actions decided, by kind and outcome",
                                        ["kind", "outcome"], registry=r)
        self.supervisions = Counter("fengqiao_supervisions", "Supervisions (督办) sent, by missed deadline and "
                                    "the supervising centre's level", ["deadline", "centre_level"], registry=r)
        self.webhook_retries = Counter("fengqiao_webhook_retries", "Webhook deliveries retried, by centre level",
                                       ["centre_level"], registry=r)
        self.webhook_dead_letters = Counter("fengqiao_webhook_dead_letters",
                                            "Notices no webhook attempt delivered, by centre", ["centre"], registry=r)
        self.rule_reloads = Counter("fengqiao_rule_reloads", "Rule pack reloads, done or refused",
                                    ["result"], registry=r)
        self.sink_rows = Counter("fengqiao_sink_rows", "Rows written to ClickHouse, by table",
                                 ["table"], registry=r)
        self.sink_retries = Counter("fengqiao_sink_retries", "Failed ClickHouse inserts retried, by table",
                                    ["table"], registry=r)
        self.sink_seconds = Histogram("fengqiao_sink_insert_seconds", "ClickHouse insert latency",
                                      ["table"], registry=r)
        self.sink_batch = Histogram("fengqiao_sink_batch_rows", "Rows per ClickHouse batch", ["table"],
                                    buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000), registry=r)
        self.notice_latency = Histogram("fengqiao_event_to_notice_seconds",
                                        "From the latest evidence's ingest time to its notice",
                                        buckets=LATENCY_BUCKETS, registry=r)
        self.notice_latency_event_time = Histogram(
            "fengqiao_event_time_to_notice_seconds",
            "From the latest evidence's event time (when it happened) to its notice",
            buckets=(*LATENCY_BUCKETS, 900, 3600, 21600, 86400), registry=r)
        self.rule_seconds = Histogram("fengqiao_rule_evaluation_seconds",
                                      "Correlation time of one event through the rule pack, by side",
                                      ["side"], buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5),
                                      registry=r)
        self.step_seconds = Histogram("fengqiao_step_batch_seconds",
                                      "One batch through a step of the worker, from fetch to confirmed outputs",
                                      ["step"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
                                      registry=r)
        self.events_late = Counter("fengqiao_events_late", "Events too late for a rule's windows (not counted by "
                                   "it; kept in fengqiao.late_events), by rule", ["rule_id"], registry=r)
        self.step_failures = Counter("fengqiao_step_failures", "Batches or periodic work of a step that failed "
                                     "and started over from what was done, by step and kind", ["step", "kind"],
                                     registry=r)
        self.signals_unrouted = Counter("fengqiao_signals_unrouted", "Signals stored that no centre of the region "
                                        "registry holds, by rule: the platform's operators see them",
                                        ["rule_id"], registry=r)
        self.signals_silenced = Counter("fengqiao_signals_silenced", "Signals stored and held back from the "
                                        "centres by a silence (静默), by rule", ["rule_id"], registry=r)
        self.consumer_lag = Gauge("fengqiao_consumer_lag", "Messages not yet committed by a step of the worker "
                                  "(its consumer group is <app id>-<step>)", ["step", "topic", "partition"], registry=r)

    def total(self, counter: Counter, **labels: str) -> int:
        """The sum of a counter over its series whose labels match ``labels``."""
        name = counter._name  # prometheus_client keeps the base name here
        total = 0.0
        for metric in self.registry.collect():
            for sample in metric.samples:
                if sample.name == f"{name}_total" and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return int(total)
