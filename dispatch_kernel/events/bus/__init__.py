"""Event buses: where emitted events wait, durably, until each subscription's run is recorded."""
