"""The device side of the kit: a paho-mqtt client that registers itself on its first connect.

- :mod:`device.identity` loads and checks a device's chain and key (key pairing, validity, CN);
- :mod:`device.endpoint` and :mod:`device.tls`: where to connect and the TLS context (SNI, ALPN, trust);
- :mod:`base.backoff`: exponential backoff with full jitter;
- :mod:`device.attempts`: how an attempt ended, and the transient/permanent rule;
- :mod:`device.wire`: paho-mqtt driven from the calling thread;
- :mod:`device.client`: :func:`~device.client.run_device`, one device's first connect and publishes;
- :mod:`device.simulate`: :func:`~device.simulate.simulate_manifest`, a fleet at once, and its summary;
- :mod:`device.check`: :func:`~device.check.check_manifest`, which things of a manifest connect;
- :mod:`device.errors`: the failures and their exit codes.
"""
