#!/usr/bin/python3
"""Drives spice-html5 (Debian's /usr/share/spice-html5) in headless Chromium.

Serves spice-html5's files over HTTP on 127.0.0.1 (an ephemeral port, in a
thread of this process), starts Chromium through chromedriver (selenium) with
a fresh profile and no network features, and takes one JSON command per line
on stdin, answering each with one JSON line on stdout:

  {"cmd": "open", "port": 5900, "password": ""}   load spice_auto.html, its
                                                  WebSocket to 127.0.0.1:port
  {"cmd": "eval", "js": "return 1 + 1"}           run JS in the page -> {"value": ...}
  {"cmd": "click", "id": "spice_surface_0", "x": 10, "y": 20}
                                                  left click at (x, y) of the element
  {"cmd": "keys", "id": "spice_surface_0", "text": "ab"}
                                                  focus the element, type the text
  {"cmd": "console"}                              the browser's console lines since last asked
  {"cmd": "quit"}

The first line is {"event": "ready", "http_port": N}. Errors answer
{"event": "error", "what": "..."}.
"""

import functools
import http.server
import json
import shutil
import sys
import tempfile
import threading
import traceback

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

ROOT = "/usr/share/spice-html5"


def emit(event, **fields):
    fields["event"] = event
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve():
    handler = functools.partial(QuietHandler, directory=ROOT)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def browser(profile):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    # The machine has no network and no display: nothing may phone home.
    for arg in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=1280,1024",
        "--user-data-dir=" + profile,
    ]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path="/usr/bin/chromedriver")
    return webdriver.Chrome(service=service, options=options)


def main():
    profile = tempfile.mkdtemp(prefix="spice-html5-chromium-")
    http_server = serve()
    driver = None
    try:
        driver = browser(profile)
        emit("ready", http_port=http_server.server_address[1])
        for line in sys.stdin:
            if not line.strip():
                continue
            cmd = json.loads(line)
            name = cmd.get("cmd")
            try:
                if name == "open":
                    url = "http://127.0.0.1:%d/spice_auto.html?host=127.0.0.1&port=%d&password=%s" % (
                        http_server.server_address[1], cmd["port"], cmd.get("password", ""))
                    # A refused link makes spice_auto.html prompt for a
                    # password; a page loaded again must not meet that prompt.
                    try:
                        driver.switch_to.alert.dismiss()
                    except NoAlertPresentException:
                        pass
                    driver.get(url)
                    emit("opened", url=url)
                elif name == "eval":
                    emit("eval", value=driver.execute_script(cmd["js"]))
                elif name == "click":
                    el = driver.find_element(By.ID, cmd["id"])
                    # Selenium 4 offsets are from the element's centre.
                    dx = cmd["x"] - el.size["width"] // 2
                    dy = cmd["y"] - el.size["height"] // 2
                    ActionChains(driver).move_to_element_with_offset(el, dx, dy).click().perform()
                    emit("clicked")
                elif name == "keys":
                    el = driver.find_element(By.ID, cmd["id"])
                    driver.execute_script("arguments[0].focus()", el)
                    ActionChains(driver).send_keys(cmd["text"]).perform()
                    emit("typed")
                elif name == "console":
                    emit("console", lines=[e.get("message", "") for e in driver.get_log("browser")])
                elif name == "quit":
                    break
                else:
                    emit("error", what="unknown command %r" % name)
            except Exception as e:  # report and carry on: the test decides
                emit("error", what="%s: %s" % (name, e), trace=traceback.format_exc())
    finally:
        if driver is not None:
            driver.quit()
        http_server.shutdown()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
