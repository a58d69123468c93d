"""Events: CloudEvents 1.0, a durable bus, subscriptions and event sources (Dispatch's event manager).

    client.emit("order.created", {"id": 7}, source="shop")      # a CloudEvent 1.0
    client.subscribe("on_order", event_type="order.*")           # events -> non-blocking runs
    client.create_event_source("nightly", type="schedule", config={"cron": "0 2 * * *", "timezone": "Europe/Berlin"})
    client.create_event_source("vc", type="vcenter", config={"url": "https://vc.example/sdk"}, secrets=["vc-login"])
    client.create_event_source("hook", type="webhook")           # POST dispatch/v1/webhooks/hook

Each event that matches a subscription (an exact type, a dotted prefix wildcard `vm.*`, or `*`,
plus optional attribute filters such as `{"source": "vc1"}`) becomes one run of the subscribed
function: its input is the event's data, `ctx.event` is the event, and the run record keeps it.

Delivery is at least once and durable: the bus stores an event before emit() returns and
acknowledges it only once the run is recorded. A failed delivery (no such function, a function
not ready) is retried with exponential backoff (plugin_options of the bus: retry_base, retry_max) and
after the subscription's `max_attempts` goes to the dead letters (`dead_letters()`). A repeated
event id reaches each subscription once. The run of a delivery has an id derived from the
subscription and the event, so a delivery repeated after a crash finds its run instead of
making a second one.

Buses (Settings.bus, entry points `dispatch_kernel.buses`): `sqlite` (the embedded default,
events.db beside the store) and `nats` (JetStream; several processes share one stream; options
url, stream, ack_wait, duplicate_window). Sources (entry points `dispatch_kernel.event_sources`):
`schedule`, `webhook`, `vcenter`; each runs as a supervised asyncio task on the events loop of
every process that serves the organization, restarted with backoff when it fails (status ERROR
with the reason, then RUNNING again) and stopped when deleted. `EventManager` (manager.py)
wires it all together, given the store, a way to start runs and a reader of secrets.
"""
