"""The official Socket.IO Admin UI (``@socket.io/admin-ui`` from npm, its
built web app ``ui/dist``) in a real browser, connected to one server of
two: it lists both servers and the sockets of both, and its disconnect
button reaches a socket of the other server. Takes the README's
screenshot."""
import functools
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .nodejs import JS_DIR, NodeUnavailable, npm_ready
from .nodes import MANAGER, Node, wait_until
from .test_admin import AUTH, instrument, stop_stats
from .test_browser import CHROMIUM, DRIVER, SCREENSHOTS, _browser

UI = JS_DIR / 'node_modules' / '@socket.io' / 'admin-ui' / 'ui' / 'dist'

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER) and not os.environ.get('CI'),
    reason='needs Debian chromium and chromium-driver (CI installs them)')


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def admin_ui():
    """The UI's static files on a free loopback port: its URL."""
    try:
        npm_ready()
    except NodeUnavailable as exc:  # pragma: no cover - node is in the CI
        pytest.skip(f'@socket.io/admin-ui unavailable: {exc}')
    http = ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(
        _Quiet, directory=str(UI)))
    threading.Thread(target=http.serve_forever, daemon=True,
                     kwargs={'poll_interval': 0.05}).start()
    yield f'http://127.0.0.1:{http.server_port}'
    http.shutdown()
    http.server_close()


@pytest.fixture
def browser():
    made = _browser()
    made.set_window_size(1360, 760)  # wide enough for the menu
    yield made
    made.quit()


def _xpath_literal(text):
    assert '"' not in text
    return f'"{text}"'


def rows(browser):
    """The text of each row of the page's table (read at once: the UI
    redraws it as events come)."""
    return browser.execute_script(
        'return [...document.querySelectorAll("tbody tr")]'
        '.map((row) => row.innerText)')


def wait_rows(browser, *parts, what=''):
    """Wait until some row of the table holds each of ``parts``."""
    return wait_until(lambda: all(any(p in r for r in rows(browser))
                                  for p in parts),
                      20, what or f'{parts} in the table')


def screenshot(browser, name):
    """A README picture, once the page's transitions are over."""
    wait_until(lambda: browser.execute_script(
        'return !document.querySelector('
        '"[class*=-enter-active], [class*=-leave-active]")'),
        20, 'the page drawn')
    os.makedirs(SCREENSHOTS, exist_ok=True)
    browser.save_screenshot(os.path.join(SCREENSHOTS, name))


def connect_form(browser, url):
    """Fill the UI's connection dialog: server URL and credentials."""
    from selenium.webdriver.common.by import By
    dialog = wait_until(lambda: [d for d in browser.find_elements(
        By.CSS_SELECTOR, '.v-dialog form') if d.is_displayed()],
        20, 'the connection dialog')[0]
    server_url, username = dialog.find_elements(
        By.CSS_SELECTOR, 'input[type=text]')[:2]
    server_url.clear()
    server_url.send_keys(url)
    username.send_keys(AUTH['username'])
    dialog.find_element(By.CSS_SELECTOR, 'input[type=password]').send_keys(
        AUTH['password'])
    dialog.find_element(By.CSS_SELECTOR, 'button[type=submit]').click()
    wait_until(lambda: not dialog.is_displayed(), 20, 'connected')


def test_the_admin_ui_shows_and_acts_on_the_whole_cluster(
        redis_server, nodes, clients, admin_ui, browser):
    from selenium.webdriver.common.by import By
    a, b = Node(redis_server.url), Node(redis_server.url)
    nodes += [a, b]
    admins = []
    for node in (a, b):
        # the UI is served from another origin
        getattr(node, '_sio', node.sio).eio.cors_allowed_origins = [
            node.url, admin_ui]
        admins.append(instrument(node.sio, auth=AUTH,
                                 server_stats_interval=0.5))
    on_a, on_b = a.client(['/']), b.client(['/', '/chat'])
    clients += [on_a, on_b]
    try:
        browser.get(admin_ui + '/')
        connect_form(browser, a.url)

        browser.get(admin_ui + '/#/servers')
        wait_rows(browser, a.mgr.host_id, b.mgr.host_id,
                  what='both servers listed')
        if MANAGER == 'sync':  # the README's pictures
            screenshot(browser, 'admin-ui-servers.png')

        browser.get(admin_ui + '/#/sockets')
        wait_rows(browser, on_a.sid(), on_b.sid(),
                  what='the sockets of both servers in /')
        if MANAGER == 'sync':
            screenshot(browser, 'admin-ui-sockets.png')

        # the row's disconnect button, for the socket on the other server
        gone = on_b.sid()
        row = browser.find_element(
            By.XPATH, f'//tbody/tr[td[contains(., {_xpath_literal(gone)})]]')
        row.find_element(By.CSS_SELECTOR, 'button').click()
        wait_until(lambda: '/' not in on_b.sio.namespaces, 20,
                   'B\'s socket disconnected from /')
        # (the click reached the row too, which opens the socket's page)
        browser.get(admin_ui + '/#/sockets')
        wait_until(lambda: not any(gone in r for r in rows(browser)) and
                   any(on_a.sid() in r for r in rows(browser)),
                   20, 'the row gone, the other one kept')
        assert on_a.sio.connected and '/chat' in on_b.sio.namespaces
    finally:
        for node, made in zip((a, b), admins):
            stop_stats(node, made)
