"""The page when things go wrong, in headless Chromium against the emulator: each failure ends in a sentence on
the page and a way on (try again, reconnect, sign in again), never a blank page. And the page by keyboard
alone, on a phone-sized screen."""

from __future__ import annotations

import base64
import json

import boto3
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as seen

from tests.browser.conftest import PASSWORD, Stack, screenshot
from tests.browser.page import bind, fill, problem_says, sign_up_and_in, text_of, wait

pytestmark = pytest.mark.timeout(300)


def site_config(stack: Stack) -> tuple[str, dict]:
    s3 = boto3.client("s3")
    bucket = stack.outputs["HostingBucketName"]
    return bucket, json.loads(s3.get_object(Bucket=bucket, Key="config.json")["Body"].read())


def put_config(bucket: str, body: bytes) -> None:
    boto3.client("s3").put_object(Bucket=bucket, Key="config.json", Body=body, ContentType="application/json")


def rewrite_answers(driver, path: str, changes: dict) -> None:
    """Alter what the page's fetch gets back from ``path`` (its JSON body's fields set to ``changes``), to see
    what the page makes of an answer that AWS then refuses. (Code built from strings would not run: the page's
    Content-Security-Policy forbids eval.)"""
    driver.execute_script(
        """
        const [path, changes] = arguments;
        const real = window.fetch;
        window.fetch = async (url, options) => {
          const answer = await real(url, options);
          if (!String(url).includes(path)) return answer;
          const body = Object.assign(await answer.json(), changes);
          const headers = { "content-type": "application/json" };
          return new Response(JSON.stringify(body), { status: answer.status, headers });
        };
        """,
        path,
        changes,
    )


def test_a_tampered_config_json_is_a_sentence_and_try_again_loads_the_repaired_one(stack, browser):
    bucket, config = site_config(stack)
    try:
        put_config(bucket, json.dumps({**config, "userPoolId": "../../evil"}).encode())
        browser.get(stack.url)
        problem_says(browser, "This site's settings (config.json) are not usable: userPoolId is missing or malformed")
        screenshot(browser, "02-1-tampered-config")
        put_config(bucket, b"{not json")
        browser.find_element(By.ID, "problem-retry").click()
        problem_says(browser, "config.json) are not usable: it is not JSON")
    finally:
        put_config(bucket, json.dumps(config).encode())
    browser.find_element(By.ID, "problem-retry").click()
    wait(browser).until(seen.visibility_of_element_located((By.ID, "sign-in-form")))
    assert not browser.find_element(By.ID, "problem").is_displayed()


def test_an_api_that_is_down_is_a_sentence_and_the_page_recovers_once_it_is_back(stack, browser, free_port):
    bucket, config = site_config(stack)
    try:  # the API's address answers nothing: a closed loopback port
        put_config(bucket, json.dumps({**config, "usersApiUrl": f"http://127.0.0.1:{free_port}"}).encode())
        sign_up_and_in(browser, stack, "carol@example.com", expect_devices=False)
        problem_says(browser, "The devices service cannot be reached: check your connection, then try again.")
        screenshot(browser, "02-2-api-down")
    finally:
        put_config(bucket, json.dumps(config).encode())
    browser.refresh()  # still signed in (the tokens are in sessionStorage): the devices load
    wait(browser).until(seen.text_to_be_present_in_element((By.ID, "status"), "0 devices."))
    assert not browser.find_element(By.ID, "problem").is_displayed()


def test_a_websocket_the_broker_refuses_is_a_sentence_and_reconnect_gets_new_credentials(stack, browser):
    sign_up_and_in(browser, stack, "dave@example.com")
    bind(browser, "demo-box-2", stack.codes["demo-box-2"])
    row = wait(browser).until(seen.presence_of_element_located((By.CSS_SELECTOR, "tr[data-thing='demo-box-2']")))
    rewrite_answers(browser, "/credentials", {"secretAccessKey": "not-the-secret-key"})
    row.find_element(By.XPATH, ".//button[text()='Watch']").click()  # the signed URL's signature is wrong: 403
    wait(browser).until(seen.text_to_be_present_in_element((By.ID, "live-state"), "could not be opened"))
    screenshot(browser, "02-3-websocket-refused")
    browser.execute_script("location.reload()")  # the page as it is, without the rewriting
    wait(browser).until(seen.presence_of_element_located((By.CSS_SELECTOR, "tr[data-thing='demo-box-2']")))
    rewrite_answers(browser, "/credentials", {"topicRoot": "devices/another-stack"})  # not its policy's topic
    browser.find_element(By.CSS_SELECTOR, "tr[data-thing='demo-box-2'] button").click()
    problem_says(browser, "AWS IoT refused to let you watch demo-box-2")
    browser.execute_script("location.reload()")
    wait(browser).until(seen.presence_of_element_located((By.CSS_SELECTOR, "tr[data-thing='demo-box-2']")))
    browser.find_element(By.CSS_SELECTOR, "tr[data-thing='demo-box-2'] button").click()
    wait(browser).until(seen.text_to_be_present_in_element((By.ID, "live-state"), "Live: watching demo-box-2"))


def _expired(token: str) -> str:
    """The same JWT with its exp in the past (the page reads exp to renew in time; the API checks signatures)."""
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["exp"] = 1
    encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{head}.{encoded}.{signature}"


def test_an_expired_token_is_renewed_quietly_and_a_session_that_cannot_be_is_a_sign_in_again(stack, browser):
    sign_up_and_in(browser, stack, "erin@example.com")
    tokens = json.loads(browser.execute_script("return sessionStorage.getItem('jitr-session')"))
    expired = {**tokens, "idToken": _expired(tokens["idToken"])}
    browser.execute_script("sessionStorage.setItem('jitr-session', arguments[0])", json.dumps(expired))
    bind(browser, "demo-box-2", "AAAA-BBBB-CCCC-DDDD")  # any call: the ID token is renewed with the refresh token
    problem_says(browser, "The binding code does not match this device.")
    renewed = json.loads(browser.execute_script("return sessionStorage.getItem('jitr-session')"))
    assert renewed["idToken"] != expired["idToken"]
    dead = {**renewed, "idToken": _expired(renewed["idToken"]), "refreshToken": "revoked"}
    browser.execute_script("sessionStorage.setItem('jitr-session', arguments[0])", json.dumps(dead))
    bind(browser, "demo-box-2", "AAAA-BBBB-CCCC-DDDD")
    problem_says(browser, "Your session has expired: sign in again.")
    assert browser.find_element(By.ID, "sign-in-form").is_displayed()
    assert browser.execute_script("return sessionStorage.length") == 0
    screenshot(browser, "02-4-session-expired")


def test_wrong_password_and_a_device_of_someone_else_are_sentences(stack, browser):
    browser.get(stack.url)
    wait(browser).until(seen.visibility_of_element_located((By.ID, "sign-in-form")))
    fill(browser, "email", "alice@example.com")
    fill(browser, "password", "not-her-password-1")
    browser.find_element(By.ID, "sign-in-button").click()
    problem_says(browser, "Wrong e-mail or password.")
    sign_up_and_in(browser, stack, "frank@example.com")
    bind(browser, "demo-box-1", stack.codes["demo-box-1"])  # alice's (test_web_page)
    problem_says(browser, "Device demo-box-1 already has an owner")


def test_the_page_works_by_keyboard_on_a_phone_sized_screen_with_a_label_on_every_control(stack, phone):
    phone.get(stack.url)
    wait(phone).until(seen.visibility_of_element_located((By.ID, "sign-in-form")))
    unlabelled = phone.execute_script(
        "return [...document.querySelectorAll('input')].filter(i => i.labels.length === 0).map(i => i.id)"
        ".concat([...document.querySelectorAll('button')].filter(b => !b.textContent.trim()).map(b => b.id))"
    )
    assert unlabelled == []
    phone.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    assert phone.switch_to.active_element.get_attribute("id") == "email"  # the first control
    phone.switch_to.active_element.send_keys("grace@example.com", Keys.TAB, PASSWORD)
    phone.find_element(By.ID, "sign-up-button").click()
    wait(phone).until(seen.visibility_of_element_located((By.ID, "confirm-form")))
    assert phone.switch_to.active_element.get_attribute("id") == "confirm-code"  # focus follows the task
    phone.switch_to.active_element.send_keys("123456", Keys.ENTER)
    wait(phone).until(seen.text_to_be_present_in_element((By.ID, "status"), "Account confirmed"))
    assert phone.switch_to.active_element.get_attribute("id") == "password"  # still filled in: Enter signs in
    phone.switch_to.active_element.send_keys(Keys.ENTER)
    wait(phone).until(seen.visibility_of_element_located((By.ID, "bind-form")))
    assert phone.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    assert "Signed in as grace@example.com" in text_of(phone, "who")
    screenshot(phone, "03-phone")
