"""A person's visit to the web page, in headless Chromium against the emulator: sign up, sign in, bind the
demo device, see its telemetry arrive live, command it, be refused a binding, sign out."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as seen

from tests.browser.conftest import screenshot
from tests.browser.page import WAIT, bind, device_of, fill, problem_says, sign_up_and_in, text_of, wait

pytestmark = pytest.mark.timeout(300)


def test_a_person_signs_up_binds_the_demo_device_watches_it_live_and_commands_it(stack, browser):
    device = device_of(stack, "demo-box-1")
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
        browser.set_window_size(1280, 1500)  # the whole page in one picture (the README shows it)
        browser.execute_script("window.scrollTo(0, 0)")
        screenshot(browser, "01-5-commanded")
        bind(browser, "bobs-box", "AAAA-BBBB-CCCC-DDDD")
        problem_says(browser, "The binding code does not match this device.")
        screenshot(browser, "01-6-refused")
        tokens = json.loads(browser.execute_script("return sessionStorage.getItem('jitr-session')"))
        browser.find_element(By.ID, "sign-out").click()
        wait(browser).until(seen.visibility_of_element_located((By.ID, "sign-in-form")))
        assert browser.execute_script("return sessionStorage.length + localStorage.length") == 0
        idp = boto3.client("cognito-idp")  # the refresh token was revoked (GlobalSignOut), not just forgotten
        refresh = {"REFRESH_TOKEN": tokens["refreshToken"]}
        with pytest.raises(idp.exceptions.NotAuthorizedException):
            wait(browser).until(lambda _: _refreshes(idp, stack, refresh) is False)
            idp.initiate_auth(
                ClientId=stack.outputs["UserPoolClientId"], AuthFlow="REFRESH_TOKEN_AUTH", AuthParameters=refresh
            )
        screenshot(browser, "01-7-signed-out")
    finally:
        device.close()


def _refreshes(idp, stack, refresh: dict) -> bool:
    """Whether the refresh token still gets new tokens (the page's sign-out revokes it asynchronously)."""
    try:
        idp.initiate_auth(
            ClientId=stack.outputs["UserPoolClientId"], AuthFlow="REFRESH_TOKEN_AUTH", AuthParameters=refresh
        )
    except idp.exceptions.NotAuthorizedException:
        return False
    return True
