"""DescribeEndpoint: the emulator's MQTT broker instead of a made-up ``*.amazonaws.com`` host.

AWS answers only a host name (``endpointAddress``) and devices connect to port 8883. The local
broker listens on a port of its own, so the answer also carries the port, where a client can
find it:

- boto3 and the AWS CLI drop members the IoT model does not know, but keep response headers:
  ``response["ResponseMetadata"]["HTTPHeaders"]["x-jitr-mqtt-port"]``;
- raw HTTP clients also see ``endpointPort`` in the JSON body;
- Python code asks :attr:`emulator.api.EmulatorApi.mqtt_endpoint` or ``EmulatorApi.info()``.

Each region the emulator serves has a broker of its own (``ApiSettings.regions``), as each AWS region
has its own data endpoint: the answer is the broker of the region the request was signed for.

Until the broker's endpoint is set (``EmulatorApi(mqtt_endpoint=...)`` or later by assigning
``mqtt_endpoint``), and for the credential-provider and jobs endpoints, moto answers.
"""

from __future__ import annotations

from emulator.api.calls import DELEGATE, Answer, Call
from emulator.store.errors import choice

PORT_HEADER = "x-jitr-mqtt-port"
ENDPOINT_TYPES = ("iot:Data", "iot:Data-ATS", "iot:CredentialProvider", "iot:Jobs")
DATA_ENDPOINTS = ("iot:Data", "iot:Data-ATS")


def describe_endpoint(call: Call) -> Answer | object:
    kind = choice(call.query.get("endpointType"), ENDPOINT_TYPES, "endpointType") or "iot:Data"
    services = call.settings.services(call.region)
    # a region not served: the first region's broker, which refuses the devices of other regions' CAs and
    # says so in its log (never moto's made-up *.amazonaws.com host, which is not on loopback)
    endpoint = services.mqtt_endpoint if services is not None else call.settings.mqtt_endpoint
    if endpoint is None or kind not in DATA_ENDPOINTS:
        return DELEGATE
    host, port = endpoint
    return Answer({"endpointAddress": host, "endpointPort": port}, headers={PORT_HEADER: str(port)})


HANDLERS = {"DescribeEndpoint": describe_endpoint}
