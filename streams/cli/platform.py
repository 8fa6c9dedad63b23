"""``fengqiao up``, ``worker`` and ``gateway``: the platform, whole or by role."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any

from streams.app import Stack, build
from streams.cli.console import Console, stop_on_signals
from streams.config import Settings


def register(sub: Any) -> None:
    p = sub.add_parser("up", help="start the whole platform on the configured (or embedded) Kafka and ClickHouse")
    p.add_argument("--simulate", action="store_true", help="feed the city simulator")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds and print a summary")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    p.add_argument("--rate", type=float, default=10.0, help="simulated grid reports per second")
    p.add_argument("--city", default="2102", help="city code for the simulator (2102 大连)")
    p.add_argument("--broker", choices=("tansu", "kafka"),
                   help="the broker to start when no Kafka is configured (default FENGQIAO_BROKER, tansu)")
    p.set_defaults(run=lambda args, settings: asyncio.run(up(args, settings)))
    sub.add_parser("worker", help="the pipeline (validate, correlate, route, sinks) on the configured Kafka (no gateway)"
                   ).set_defaults(run=lambda args, settings: asyncio.run(serve("worker", settings)))
    sub.add_parser("gateway", help="the publishers' gateway and the centres' dispatch desk on the configured Kafka"
                   ).set_defaults(run=lambda args, settings: asyncio.run(serve("gateway", settings)))


def reload_on_sighup(stack: Stack) -> None:
    assert stack.pipeline is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, stack.pipeline.reload_rules)


async def up(args: argparse.Namespace, settings: Settings) -> int:
    if args.broker:
        settings = settings.model_copy(update={"broker": args.broker})
    out = sys.stderr if args.json else sys.stdout
    stop = stop_on_signals()
    async with build(settings, Console(out)) as stack:
        reload_on_sighup(stack)
        where = "chdb " + str(settings.chdb_path) if settings.embedded_clickhouse else "ClickHouse server"
        started = f" (Apache Kafka under {settings.data_dir / 'kafka'})" if settings.broker == "kafka" else \
            " (embedded tansu)"
        print(f"fengqiao up: Kafka {stack.bootstrap_servers}"
              f"{started if settings.embedded_kafka else ''}, {where}\n"
              f"  gateway http://{settings.gateway_host}:{stack.gateway.port}/v1/grid-reports  "
              f"metrics http://{settings.metrics_host}:{stack.metrics_port}/metrics\n"
              f"  console {stack.console.base}/  (an operator: fengqiao operators add {args.city} your.name --generate)\n"
              f"  rules: {', '.join(r.id for r in stack.rules)}. Ctrl-C stops.", file=out, flush=True)
        simulator, sim_stop, sim_task = None, asyncio.Event(), None
        if args.simulate:
            # The tools are not in the worker image: imported only when a simulated city is asked for.
            from streams.tools.simulator import CitySimulator

            assert stack.cluster is not None
            simulator = CitySimulator(stack.cluster, city=args.city, rate=args.rate)
            sim_task = asyncio.create_task(simulator.run(sim_stop))
        watchdog = asyncio.create_task(stack.watch(stop))
        try:
            await asyncio.wait_for(stop.wait(), timeout=args.duration)
        except asyncio.TimeoutError:
            pass
        watchdog.cancel()
        sim_stop.set()
        if sim_task:
            try:
                await asyncio.wait_for(sim_task, 10.0)
            except asyncio.TimeoutError:
                print("the simulator did not stop within 10 s", file=sys.stderr)
            except Exception as exc:  # e.g. the broker died before it could connect: said, not raised
                print(f"the simulator stopped: {exc}", file=sys.stderr)
        broker_ok = stack.broker is None or stack.broker.alive
        steps_ok = stack.pipeline is None or stack.pipeline.alive
        # Everything in flight is finished first (the embedded broker forgets what is left when it
        # stops): all of it after a timed run, up to 10 s after Ctrl-C.
        drained = await stack.drain(timeout=30.0 if args.duration is not None else 10.0) \
            if broker_ok and steps_ok else False
        summary = stack.summary()
        summary["drained"] = drained
        summary["broker_ok"] = broker_ok
        if simulator:
            summary["simulated_reports"] = simulator.sent
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        rows = ", ".join(f"{t} {n}" for t, n in summary["clickhouse_rows"].items())
        print(f"summary: {summary['events_in']} in, {summary['events_valid']} valid, "
              f"{summary['events_dlq']} dead-lettered, {summary['signals']} signals, "
              f"{summary['notices']} notices; ClickHouse rows: {rows}", file=out)
    if not broker_ok:
        print("fengqiao up: stopped because the broker it started exited; see its log in the data dir",
              file=sys.stderr)
    if not steps_ok:
        print("fengqiao up: stopped because a step of the worker stopped working; see the log above",
              file=sys.stderr)
    return 0 if broker_ok and steps_ok else 1


async def serve(role: str, settings: Settings) -> int:
    """One role of a deployment on a configured Kafka: ``worker`` (the pipeline's steps, sinks and
    webhooks) or ``gateway`` (the publishers' gateway and the centres' dispatch desk)."""
    if settings.embedded_kafka:
        print(f"fengqiao {role} needs FENGQIAO_KAFKA_BOOTSTRAP_SERVERS (fengqiao up runs the embedded broker)",
              file=sys.stderr)
        return 2
    stop = stop_on_signals()
    worker = role == "worker"
    async with build(settings, Console(sys.stdout) if worker else None, gateway=not worker, pipeline=worker) as stack:
        where = f"group {settings.app_id}" if worker else f"http://{settings.gateway_host}:{stack.gateway.port}"
        if worker:
            reload_on_sighup(stack)
        print(f"fengqiao {role} ready: {where}, Kafka {stack.bootstrap_servers}, "
              f"metrics http://{settings.metrics_host}:{stack.metrics_port}/metrics", flush=True)
        watchdog = asyncio.create_task(stack.watch(stop))
        await stop.wait()
        watchdog.cancel()
        healthy = stack.alive()
    return 0 if healthy else 1
