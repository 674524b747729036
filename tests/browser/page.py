"""What a person does on the page, as selenium steps, and the device on the other end."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import PASSWORD, Stack, screenshot
from tests.e2e.conftest import EnrolledDevice

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


def sign_up_and_in(driver, stack: Stack, email: str, shots: str | None = None, *, expect_devices: bool = True) -> None:
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
    if expect_devices:
        wait(driver).until(seen.text_to_be_present_in_element((By.ID, "status"), "device"))
    if shots:
        screenshot(driver, f"{shots}-2-signed-in")


def bind(driver, thing: str, code: str) -> None:
    fill(driver, "bind-thing", thing)
    fill(driver, "bind-code", code)
    driver.find_element(By.ID, "bind-button").click()


def device_of(stack: Stack, thing: str) -> EnrolledDevice:
    """The device's own MQTT/TLS connection with its certificate, listening to its commands."""
    cert, key = stack.device_files(thing)
    root = stack.outputs["DeviceTopicRoot"]
    return EnrolledDevice(stack.emulator.info(), cert, key, thing, root, listen=True)
