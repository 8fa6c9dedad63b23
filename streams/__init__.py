"""fengqiao stream processing: the worker's steps and their state, rules, routing, sinks, gateway, embedded stack, CLI."""
