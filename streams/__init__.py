"""fengqiao stream processing: the Faust app and agents, rules, routing, sinks, gateway, embedded stack, CLI."""
