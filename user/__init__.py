"""The users' side of the kit (what a phone app does), for ``jitr app``.

- :mod:`user.account`: where the app's settings and the signed-in user's tokens are kept (0600), and
  the ID token, refreshed when it has expired;
- :mod:`user.devices`: the users API (bindings, registration, credentials) with that token;
- :mod:`user.live`: MQTT over WebSocket with SigV4 and the credentials: a device's telemetry, and
  commands to it.
"""
