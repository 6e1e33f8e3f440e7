"""The management console (management/console/index.html) served at "/" by the management
listener, driven in headless Chromium through Debian's chromium, chromium-driver and
python3-selenium: the page is served without credentials while /api/... still wants them;
a wrong password shows the API's reason and does not log in; a queue is created, published
to, read and deleted through the forms; the overview's rate charts follow published
messages; exchanges and connections are listed; a user is created and deleted. Each step
the page takes is checked through the HTTP API too.

If Chromium cannot be started the tests fail (they do not skip): CI installs the packages
(tests/integration/apt-packages.txt)."""
import http.client
import json
import os
import re
import urllib.error
import urllib.request

import pika
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from helpers import close_quietly
from mgmt_helpers import Api, api, connect, make_user, rates_broker, seg  # noqa: F401

pytestmark = pytest.mark.warren_only

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
POLL_MS = 250  # the page's ?interval=, so that polled views change quickly
WAIT = 20      # seconds any one expected change of the page may take


@pytest.fixture(scope="module")
def mbroker():
    """Rates sampled every 500 ms, so that the rate charts move quickly."""
    yield from rates_broker(500)


@pytest.fixture(scope="module")
def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1024"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    except Exception as e:  # a missing browser must fail the suite, not skip it
        pytest.fail("headless Chromium did not start (%s with %s): %s" % (CHROMIUM, CHROMEDRIVER, e))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def base_url(broker):
    return "http://127.0.0.1:%d" % broker.http_port


def wait(driver, cond, what, timeout=WAIT):
    """Waits (bounded) until cond(driver) is truthy and returns it; fails saying `what`."""
    return WebDriverWait(driver, timeout, poll_frequency=0.1,
                         ignored_exceptions=(NoSuchElementException,
                                             StaleElementReferenceException)).until(cond, what)


def by_id(driver, element_id):
    return driver.find_element(By.ID, element_id)


def js_errors(driver):
    """Severe browser-console entries other than failed HTTP loads (a 401 or 404 the page
    asked for and handled is logged by Chromium as a failed resource load)."""
    return [e for e in driver.get_log("browser")
            if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]]


def open_console(driver, broker):
    """The page with no session in this tab, on the login form."""
    url = "%s/?interval=%d" % (base_url(broker), POLL_MS)
    driver.get(url)
    driver.execute_script("sessionStorage.clear()")
    driver.get(url)
    driver.get_log("browser")  # start each test with an empty console log
    wait(driver, lambda d: by_id(d, "login-user").is_displayed(), "the login form")


def type_into(driver, element_id, text):
    el = by_id(driver, element_id)
    el.clear()
    el.send_keys(text)


def log_in(driver, broker, user="guest", password="guest"):
    open_console(driver, broker)
    type_into(driver, "login-user", user)
    type_into(driver, "login-pass", password)
    by_id(driver, "login-submit").click()
    wait(driver, lambda d: by_id(d, "app").is_displayed(), "the console after logging in")


def show_tab(driver, name):
    by_id(driver, "tab-" + name).click()
    wait(driver, lambda d: by_id(d, "panel-" + name).is_displayed(), "the %s tab" % name)


def row(driver, table_id, **data):
    """The row of table_id whose data-* attributes match, or None."""
    for tr in driver.find_elements(By.CSS_SELECTOR, "#%s tbody tr" % table_id):
        if all(tr.get_attribute("data-" + k) == v for k, v in data.items()):
            return tr
    return None


def cell(driver, table_id, column, **data):
    tr = row(driver, table_id, **data)
    return tr.find_element(By.CLASS_NAME, "col-" + column).text if tr is not None else None


def choose_vhost(driver, select_id, vhost):
    wait(driver, lambda d: vhost in [o.get_attribute("value")
                                     for o in Select(by_id(d, select_id)).options],
         "vhost %r offered in #%s" % (vhost, select_id))
    Select(by_id(driver, select_id)).select_by_value(vhost)


def accept_confirm(driver):
    alert = wait(driver, lambda d: d.switch_to.alert, "the confirmation dialog")
    alert.accept()


def error_shown(driver):
    """The status line's text when it shows an error, else None."""
    el = by_id(driver, "status")
    return el.text if el.is_displayed() and el.get_attribute("data-kind") == "error" else None


def wait_for_action(driver, cond, what):
    """Waits for the effect of a form or button; stops early, failing with the page's error,
    when the page reports that the API call failed."""
    def done(d):
        err = error_shown(d)
        assert err is None, "%s: the page shows an error: %s" % (what, err)
        return cond(d)
    return wait(driver, done, what)


def data_value(driver, element_id):
    return float(by_id(driver, element_id).get_attribute("data-value"))


def test_page_served_without_auth_and_api_still_needs_it(mbroker):
    base = base_url(mbroker)
    pages = []
    for path in ("/", "/index.html", "/?interval=1000"):
        with urllib.request.urlopen(base + path, timeout=10) as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == "text/html; charset=utf-8"
            assert r.headers["Cache-Control"] == "no-cache"
            pages.append(r.read())
    page = pages[0]
    assert pages[1] == page and pages[2] == page
    assert page.startswith(b"<!doctype html>") and page.rstrip().endswith(b"</html>")
    for marker in (b'id="login-form"', b'id="chart-rates"', b'id="queues-table"'):
        assert marker in page
    # Self-contained: nothing loaded from anywhere else (only data: URIs).
    assert re.findall(rb'(?:src|href)\s*=\s*["\']?(?!data:)[^"\'\s>]+', page) == []
    for external in (b"http://", b"https://", b"url(", b"@import"):
        assert external not in page, external

    # HEAD: the GET's headers, no body; the keep-alive connection stays usable after it.
    c = http.client.HTTPConnection("127.0.0.1", mbroker.http_port, timeout=10)
    try:
        c.request("HEAD", "/")
        r = c.getresponse()
        assert r.status == 200 and r.read() == b""
        assert r.headers["Content-Type"] == "text/html; charset=utf-8"
        assert int(r.headers["Content-Length"]) == len(page)
        c.request("GET", "/api/overview")
        r = c.getresponse()
        assert r.status == 401
        assert json.loads(r.read()) == {"error": "not_authorized", "reason": "Login failed"}
        assert r.headers["WWW-Authenticate"].startswith("Basic ")
        c.request("POST", "/", body=b"")
        r = c.getresponse()
        r.read()
        assert r.status == 405
    finally:
        c.close()

    # The API and /metrics answer as before.
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(base + "/api/queues", timeout=10)
    assert e.value.code == 401
    assert Api(mbroker).get("/overview")["node"]
    with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
        assert r.status == 200 and b"rabbitmq_" in r.read()
    for path in ("/index.htm", "/console", "/favicon.ico"):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(base + path, timeout=10)
        assert e.value.code == 404, path


def test_wrong_password_shows_the_reason_and_does_not_log_in(browser, mbroker):
    open_console(browser, mbroker)
    type_into(browser, "login-user", "guest")
    type_into(browser, "login-pass", "not-the-password")
    by_id(browser, "login-submit").click()
    err = wait(browser, lambda d: by_id(d, "login-error") if by_id(d, "login-error").is_displayed()
               else None, "the login error")
    assert "401" in err.text and "Login failed" in err.text, err.text
    assert not by_id(browser, "app").is_displayed()
    assert by_id(browser, "login-form").is_displayed()
    assert browser.execute_script("return sessionStorage.length") == 0

    # The right password then logs in, and logging out forgets the credentials.
    type_into(browser, "login-pass", "guest")
    by_id(browser, "login-submit").click()
    wait(browser, lambda d: by_id(d, "app").is_displayed(), "the console after logging in")
    assert not by_id(browser, "login-error").is_displayed()
    assert by_id(browser, "whoami").text.startswith("guest")
    assert browser.execute_script("return sessionStorage.length") == 1
    by_id(browser, "logout").click()
    wait(browser, lambda d: by_id(d, "login-form").is_displayed(), "the login form after logout")
    assert not by_id(browser, "app").is_displayed()
    assert browser.execute_script("return sessionStorage.length") == 0
    assert js_errors(browser) == []


def test_queue_create_publish_get_and_delete(browser, mbroker, api):
    q = "console q/%d" % os.getpid()  # a space and a slash: the page must percent-encode
    qpath = "/queues/%2F/" + seg(q)
    log_in(browser, mbroker)
    show_tab(browser, "queues")

    # Create through the form.
    choose_vhost(browser, "queue-vhost", "/")
    type_into(browser, "queue-name", q)
    assert by_id(browser, "queue-durable").is_selected()
    by_id(browser, "queue-create").click()
    wait_for_action(browser, lambda d: row(d, "queues-table", vhost="/", name=q),
                    "the new queue's row")
    info = api.get(qpath)
    assert info["name"] == q and info["vhost"] == "/" and info["durable"] is True
    wait(browser, lambda d: cell(d, "queues-table", "messages", vhost="/", name=q) == "0",
         "0 messages in the new queue")
    assert cell(browser, "queues-table", "type", vhost="/", name=q) == "classic"
    assert cell(browser, "queues-table", "state", vhost="/", name=q) == "running"

    # An error from the API is shown with its reason.
    type_into(browser, "queue-name", "amq.console-%d" % os.getpid())
    by_id(browser, "queue-create").click()
    shown = wait(browser, error_shown, "the refusal in the status line")
    _, refusal, _ = api.call("PUT", "/queues/%2F/" + seg("amq.console-%d" % os.getpid()),
                             {"durable": True})
    assert "403" in shown and refusal["reason"] in shown, shown
    by_id(browser, "status").click()  # dismissed
    wait(browser, lambda d: not by_id(d, "status").is_displayed(), "the status line dismissed")
    assert row(browser, "queues-table", vhost="/", name="amq.console-%d" % os.getpid()) is None

    # Publish through the default exchange; the table's count goes from 0 to 1.
    payload = "hello from the console %d" % os.getpid()
    choose_vhost(browser, "publish-vhost", "/")
    type_into(browser, "publish-queue", q)
    type_into(browser, "publish-payload", payload)
    by_id(browser, "publish-submit").click()
    result = wait_for_action(browser, lambda d: by_id(d, "publish-result")
                             if by_id(d, "publish-result").get_attribute("data-routed") else None,
                             "the publish result")
    assert result.get_attribute("data-routed") == "true" and "routed: true" in result.text
    wait(browser, lambda d: cell(d, "queues-table", "messages", vhost="/", name=q) == "1",
         "1 message in the queue's row")
    assert cell(browser, "queues-table", "ready", vhost="/", name=q) == "1"
    assert api.get(qpath)["messages"] == 1

    # A message no queue takes is reported as not routed.
    type_into(browser, "publish-queue", "no-such-queue-%d" % os.getpid())
    by_id(browser, "publish-submit").click()
    result = wait_for_action(browser, lambda d: by_id(d, "publish-result")
                             if by_id(d, "publish-result").get_attribute("data-routed") else None,
                             "the second publish result")
    assert result.get_attribute("data-routed") == "false" and "routed: false" in result.text

    # Get it back (requeued): the payload is shown and the message stays on the queue.
    choose_vhost(browser, "get-vhost", "/")
    type_into(browser, "get-queue", q)
    Select(by_id(browser, "get-ackmode")).select_by_value("ack_requeue_true")
    type_into(browser, "get-count", "1")
    by_id(browser, "get-submit").click()
    shown = wait_for_action(browser, lambda d: d.find_elements(
        By.CSS_SELECTOR, "#get-result .msg-payload"), "the message got from the queue")
    assert [p.text for p in shown] == [payload]
    assert by_id(browser, "get-result").get_attribute("data-count") == "1"
    meta = browser.find_element(By.CSS_SELECTOR, "#get-result .msg .meta").text
    assert ("routing key '%s'" % q) in meta, meta
    wait(browser, lambda d: api.get(qpath)["messages"] == 1, "the message requeued")
    wait(browser, lambda d: cell(d, "queues-table", "messages", vhost="/", name=q) == "1",
         "the requeued message in the row")

    # Delete through the row's button (after the confirmation); gone from table and API.
    row(browser, "queues-table", vhost="/", name=q).find_element(
        By.CLASS_NAME, "queue-delete").click()
    accept_confirm(browser)
    wait_for_action(browser, lambda d: row(d, "queues-table", vhost="/", name=q) is None,
                    "the deleted queue's row gone")
    assert api.call("GET", qpath)[0] == 404
    assert js_errors(browser) == []


def test_overview_charts_follow_published_messages(browser, mbroker, api):
    q = "console-rates-%d" % os.getpid()
    log_in(browser, mbroker)
    wait(browser, lambda d: by_id(d, "panel-overview").is_displayed(), "the overview tab")
    for cid in ("chart-rates", "chart-queued"):
        canvas = by_id(browser, cid)
        assert canvas.tag_name == "canvas" and canvas.is_displayed()
        assert canvas.size["width"] > 100 and canvas.size["height"] > 50
    wait(browser, lambda d: by_id(d, "ov-node").text not in ("", "–"), "the node name")
    assert by_id(browser, "ov-node").text == api.get("/overview")["node"]
    # The charts are live: every poll adds a sample.
    first = int(by_id(browser, "chart-rates").get_attribute("data-samples") or 0)
    wait(browser, lambda d: int(d.find_element(By.ID, "chart-rates")
                                .get_attribute("data-samples")) >= first + 3,
         "three more samples")

    conn = connect(mbroker, "guest", "guest")
    try:
        ch = conn.channel()
        ch.queue_declare(q)

        def publishing_shows_a_rate(d):
            for i in range(50):
                ch.basic_publish("", q, b"m%d" % i)
            return data_value(d, "rate-publish") > 0

        wait(browser, publishing_shows_a_rate, "a publish rate above 0 on the overview")
        assert by_id(browser, "rate-publish").text.endswith("/s")
        # The rate line left the chart's floor: pixels of the publish colour are drawn.
        blue = browser.execute_script("""
            const c = document.getElementById('chart-rates');
            const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < px.length; i += 4)
              if (px[i + 3] > 200 && px[i + 2] > 180 && px[i] < 90 && px[i + 1] < 140) n++;
            return n;""")
        assert blue > 0
        # Getting and acknowledging moves the deliver/get and ack rates.
        def consuming_shows_rates(d):
            for _ in range(10):
                method, _, _ = ch.basic_get(q)
                if method is not None:
                    ch.basic_ack(method.delivery_tag)
            return data_value(d, "rate-deliver") > 0 and data_value(d, "rate-ack") > 0

        wait(browser, consuming_shows_rates, "deliver/get and ack rates above 0")
        for _ in range(100):
            ch.basic_publish("", q, b"kept")
        # The queued-messages chart and totals follow queue_totals.
        wait(browser, lambda d: data_value(d, "queued-total") >= 50, "queued messages counted")
        totals = api.get("/overview")["queue_totals"]
        assert totals["messages"] >= 50
        assert data_value(browser, "ov-messages") >= 50

        # The connection is listed with its user and client.
        show_tab(browser, "connections")
        name = wait(browser, lambda d: next(
            (tr.get_attribute("data-key") for tr in d.find_elements(
                By.CSS_SELECTOR, "#connections-table tbody tr")
             if "Pika" in tr.find_element(By.CLASS_NAME, "col-client").text), None),
            "the pika connection's row")
        listed = [c for c in api.get("/connections") if c["name"] == name]
        assert len(listed) == 1
        cells = {k: cell(browser, "connections-table", k, key=name)
                 for k in ("user", "vhost", "channels", "state")}
        assert cells == {"user": "guest", "vhost": "/", "channels": str(listed[0]["channels"]),
                         "state": listed[0]["state"]}
    finally:
        close_quietly(conn)
        api.call("DELETE", "/queues/%2F/" + seg(q))
    assert js_errors(browser) == []


def test_exchanges_table_and_publish_form(browser, mbroker, api):
    q = "console-xq-%d" % os.getpid()
    conn = connect(mbroker, "guest", "guest")
    try:
        ch = conn.channel()
        ch.queue_declare(q)
        ch.queue_bind(q, "amq.direct", "console-key")
        log_in(browser, mbroker)
        show_tab(browser, "exchanges")
        wait(browser, lambda d: row(d, "exchanges-table", vhost="/", name="amq.topic"),
             "amq.topic listed")
        direct = dict(vhost="/", name="amq.direct")
        assert cell(browser, "exchanges-table", "type", **direct) == "direct"
        assert cell(browser, "exchanges-table", "durable", **direct) == "yes"
        assert cell(browser, "exchanges-table", "auto-delete", **direct) == "no"
        assert cell(browser, "exchanges-table", "name", vhost="/", name="") == "(AMQP default)"
        listed = {(x["vhost"], x["name"]) for x in api.get("/exchanges")}
        assert int(by_id(browser, "exchanges-table").get_attribute("data-rows")) == len(listed)

        choose_vhost(browser, "xpublish-vhost", "/")
        wait(browser, lambda d: "amq.direct" in [o.get_attribute("value") for o in
                                                 Select(by_id(d, "xpublish-exchange")).options],
             "amq.direct offered")
        Select(by_id(browser, "xpublish-exchange")).select_by_value("amq.direct")
        type_into(browser, "xpublish-key", "console-key")
        type_into(browser, "xpublish-payload", "via amq.direct")
        by_id(browser, "xpublish-submit").click()
        result = wait_for_action(browser, lambda d: by_id(d, "xpublish-result")
                                 if by_id(d, "xpublish-result").get_attribute("data-routed")
                                 else None, "the publish result")
        assert result.get_attribute("data-routed") == "true"
        wait(browser, lambda d: api.get("/queues/%2F/" + seg(q))["messages"] == 1,
             "the message in the bound queue")
        method, _, body = ch.basic_get(q, auto_ack=True)
        assert method.routing_key == "console-key" and body == b"via amq.direct"
    finally:
        close_quietly(conn)
        api.call("DELETE", "/queues/%2F/" + seg(q))
    assert js_errors(browser) == []


def test_user_create_and_delete(browser, mbroker, api):
    name = "console-user-%d" % os.getpid()
    log_in(browser, mbroker)
    show_tab(browser, "users")
    wait(browser, lambda d: row(d, "users-table", name="guest"), "guest listed")
    type_into(browser, "user-name", name)
    type_into(browser, "user-pass", "s3cret")
    type_into(browser, "user-tags", "management, monitoring")
    choose_vhost(browser, "user-vhost", "/")
    by_id(browser, "user-create").click()
    wait_for_action(browser, lambda d: row(d, "users-table", name=name), "the new user's row")
    assert cell(browser, "users-table", "tags", name=name) == "management, monitoring"
    u = api.get("/users/" + seg(name))
    assert u["tags"] == ["management", "monitoring"]
    assert api.get("/permissions/%2F/" + seg(name))["configure"] == ".*"
    assert Api(mbroker, name, "s3cret").get("/whoami") == {
        "name": name, "tags": ["management", "monitoring"]}

    row(browser, "users-table", name=name).find_element(By.CLASS_NAME, "user-delete").click()
    accept_confirm(browser)
    wait_for_action(browser, lambda d: row(d, "users-table", name=name) is None,
                    "the deleted user's row gone")
    assert api.call("GET", "/users/" + seg(name))[0] == 404
    assert js_errors(browser) == []


def test_management_user_sees_no_users_tab(browser, mbroker, api):
    name = "console-mgmt-%d" % os.getpid()
    q = "console-mgmt-q-%d" % os.getpid()
    make_user(api, name, "pw", vhost="/", tags="management")
    api.put("/queues/%2F/" + seg(q), {"durable": False})
    try:
        log_in(browser, mbroker, name, "pw")
        assert by_id(browser, "whoami").text == "%s (management)" % name
        assert not by_id(browser, "tab-users").is_displayed()
        show_tab(browser, "queues")
        wait(browser, lambda d: row(d, "queues-table", vhost="/", name=q), "the queue listed")
        assert by_id(browser, "queue-vhost").get_attribute("value") == "/"
        # Overview polls keep working, and nothing failed.
        first = int(by_id(browser, "chart-rates").get_attribute("data-samples"))
        wait(browser, lambda d: int(by_id(d, "chart-rates").get_attribute("data-samples")) > first,
             "another overview sample")
        assert error_shown(browser) is None
        assert js_errors(browser) == []
    finally:
        api.call("DELETE", "/queues/%2F/" + seg(q))
        api.delete("/users/" + seg(name))
