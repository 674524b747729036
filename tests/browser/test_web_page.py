"""A person's visit to the web page, in headless Chromium against the emulator: sign up, sign in, bind the
demo device, see its telemetry arrive live, command it, be refused a binding, sign out."""

from __future__ import annotations

import json
import time

import paho.mqtt.client as mqtt
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import PASSWORD, Stack, screenshot

pytestmark = pytest.mark.timeout(300)
WAIT = 15


def wait(driver, seconds: float = WAIT) -> WebDriverWait:
    return WebDriverWait(driver, seconds, poll_frequency=0.05)


def text_of(driver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def problem_says(driver, words: str) -> None:
    wait(driver).until(seen.text_to_be_present_in_element((By.ID, "problem-text"), words))


def fill(driver, element_id: str, value: str) -> None:
    field = driver.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(value)


def sign_up_and_in(driver, stack: Stack, email: str, shots: str | None = None) -> None:
    driver.get(stack.url)
    wait(driver).until(seen.visibility_of_element_located((By.ID, "sign-in-form")))
    fill(driver, "email", email)
    fill(driver, "password", PASSWORD)
    if shots:
        screenshot(driver, f"{shots}-1-sign-up")
    driver.find_element(By.ID, "sign-up-button").click()
    wait(driver).until(seen.visibility_of_element_located((By.ID, "confirm-form")))
    fill(driver, "confirm-code", "123456")  # the emulator's Cognito takes any code (it sends no e-mail)
    driver.find_element(By.ID, "confirm-button").click()
    wait(driver).until(seen.text_to_be_present_in_element((By.ID, "status"), "Account confirmed"))
    fill(driver, "password", PASSWORD)
    driver.find_element(By.ID, "sign-in-button").click()
    wait(driver).until(seen.visibility_of_element_located((By.ID, "bind-form")))
    if shots:
        screenshot(driver, f"{shots}-2-signed-in")


def bind(driver, thing: str, code: str) -> None:
    fill(driver, "bind-thing", thing)
    fill(driver, "bind-code", code)
    driver.find_element(By.ID, "bind-button").click()


class Device:
    """The device's own MQTT/TLS connection with its certificate: it publishes telemetry and hears commands."""

    def __init__(self, stack: Stack, thing: str) -> None:
        cert, key = stack.device_files(thing)
        info = stack.emulator.info()
        self.thing = thing
        self.heard: list[tuple[str, str]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=thing, protocol=mqtt.MQTTv311)
        self.client.tls_set(ca_certs=stack.endpoint_ca, certfile=str(cert), keyfile=str(key))
        self.client.on_message = lambda _c, _u, m: self.heard.append((m.topic, m.payload.decode()))
        self.client.connect(info["mqtt_host"], info["mqtt_port"], 30)
        self.client.loop_start()
        self.root = f"devices/{stack.outputs['DeviceTopicRoot'].split('/')[1]}/{thing}"
        result, _ = self.client.subscribe(f"{self.root}/commands/#", qos=1)
        assert result == mqtt.MQTT_ERR_SUCCESS

    def publish(self, payload: dict) -> None:
        info = self.client.publish(f"{self.root}/telemetry", json.dumps(payload), qos=1)
        info.wait_for_publish(10)
        assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_a_person_signs_up_binds_the_demo_device_watches_it_live_and_commands_it(stack, browser):
    device = Device(stack, "demo-box-1")
    try:
        device.publish({"thingName": "demo-box-1", "temperature": 20.5})  # archived before anyone watches
        sign_up_and_in(browser, stack, "alice@example.com", shots="01")
        bind(browser, "demo-box-1", stack.codes["demo-box-1"])
        row = wait(browser).until(seen.presence_of_element_located((By.CSS_SELECTOR, "tr[data-thing='demo-box-1']")))
        assert "yes" in row.text and "online since" in row.text  # registered; the presence rule saw it connect
        screenshot(browser, "01-3-bound")
        row.find_element(By.XPATH, ".//button[text()='Watch']").click()
        wait(browser).until(seen.text_to_be_present_in_element((By.ID, "live-state"), "Live: watching demo-box-1"))
        assert "20.5" in text_of(browser, "messages")  # the archive's message, read through the API
        device.publish({"thingName": "demo-box-1", "temperature": 21.75})
        published = time.monotonic()
        wait(browser, 2).until(seen.text_to_be_present_in_element((By.ID, "messages"), "21.75"))
        assert time.monotonic() - published < 2
        assert "temperature" in text_of(browser, "chart-caption")
        screenshot(browser, "01-4-live")
        fill(browser, "command-body", '{"led": "on"}')
        browser.find_element(By.ID, "command-button").click()
        wait(browser).until(seen.text_to_be_present_in_element((By.ID, "status"), "Command sent to demo-box-1"))
        deadline = time.monotonic() + WAIT
        while not device.heard and time.monotonic() < deadline:
            time.sleep(0.05)
        assert device.heard == [(f"{device.root}/commands/app", '{"led": "on"}')]
        screenshot(browser, "01-5-commanded")
        bind(browser, "bobs-box", "AAAA-BBBB-CCCC-DDDD")
        problem_says(browser, "The binding code does not match this device.")
        screenshot(browser, "01-6-refused")
        browser.find_element(By.ID, "sign-out").click()
        wait(browser).until(seen.visibility_of_element_located((By.ID, "sign-in-form")))
        assert browser.execute_script("return sessionStorage.length + localStorage.length") == 0
        screenshot(browser, "01-7-signed-out")
    finally:
        device.close()
