"""What emulator/api/moto_server.py relies on in moto's server: an upgrade that moves it fails here, by name."""

from __future__ import annotations

import inspect

from emulator.api.moto_server import cached_dispatcher, remember_response_methods


def test_moto_still_finds_a_backend_by_host_and_response_methods_by_class():
    from moto.core import responses
    from moto.server import DomainDispatcherApplication

    assert "host" in inspect.signature(DomainDispatcherApplication.get_backend_for_host).parameters
    assert "method_names_from_class(self.__class__)" in inspect.getsource(responses.BaseResponse.call_action)


def test_the_dispatcher_asks_moto_once_a_host(monkeypatch):
    from moto.server import DomainDispatcherApplication

    asked: list[str] = []

    def counting(self, host):
        asked.append(host)
        return "iot"

    monkeypatch.setattr(DomainDispatcherApplication, "get_backend_for_host", counting)
    dispatcher = cached_dispatcher(lambda backend: None)
    assert [dispatcher.get_backend_for_host("iot.us-east-1.amazonaws.com") for _ in range(3)] == ["iot"] * 3
    assert dispatcher.get_backend_for_host(None) is None
    assert asked == ["iot.us-east-1.amazonaws.com"]


def test_response_methods_are_listed_once_a_class():
    from moto.core import responses

    remember_response_methods()
    remember_response_methods()  # twice changes nothing
    names = responses.method_names_from_class(responses.BaseResponse)
    assert "call_action" in names and responses.method_names_from_class(responses.BaseResponse) is names
