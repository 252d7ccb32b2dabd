"""The chat example in real browsers, each on another server: names, who
is online, the server of each message, /who, /ping, the cluster panel and
a recovered connection. Takes the README's screenshots."""
import os
import shutil
import socket
import tempfile

import pytest

from .nodes import wait_until
from .test_examples import start_chats, stop_all

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
DRIVER = shutil.which('chromedriver')
#: where the README's pictures go: ``SIO_SCREENSHOTS=docs/screenshots``
#: renews them; otherwise they are taken into a temporary directory (the
#: checkout is left as it was)
SCREENSHOTS = os.environ.get('SIO_SCREENSHOTS') or tempfile.mkdtemp(
    prefix='sio-screenshots-')

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER) and not os.environ.get('CI'),
    reason='needs Debian chromium and chromium-driver (CI installs them)')


@pytest.fixture(params=[['flask', 'flask'], ['uvicorn', 'fastapi']],
                ids=['flask', 'fastapi'])
def chat_servers(request, redis_server):
    """Two chat servers: ``examples/chat.py`` twice, or
    ``examples/fastapi_chat.py`` under uvicorn and as a script."""
    ports, procs = start_chats(request.param, redis_server.url)
    yield ports
    stop_all(procs)


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ('--headless=new', '--no-sandbox', '--disable-gpu',
                 '--disable-quic', '--no-first-run',
                 '--disable-background-networking',
                 '--disable-component-update', '--disable-sync',
                 '--disable-dev-shm-usage', '--window-size=1200,760'):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


def text_of(browser, element_id):
    from selenium.webdriver.common.by import By
    return browser.find_element(By.ID, element_id).text


def wait_text(browser, element_id, *parts, what=''):
    """Wait until the element's text holds every part."""
    return wait_until(lambda: all(
        p in text_of(browser, element_id) for p in parts), 15,
        what or f'{parts} in #{element_id}')


def join_as(browser, url, name):
    """Open the page; it asks for a name first, then connects."""
    from selenium.webdriver.common.by import By
    browser.get(url)
    field = browser.find_element(By.ID, 'name')
    assert field.is_displayed()  # the dialog, before anything else
    assert not browser.execute_script('return socket.connected')
    field.send_keys(name)
    browser.find_element(By.ID, 'name-ok').click()
    wait_until(lambda: browser.execute_script('return socket.connected'),
               15, f'{name} connected')
    wait_until(lambda: connected(browser), 15, f'{name}\'s badge')


def connected(browser):
    """True once the page's badge says connected (not disconnected)."""
    return text_of(browser, 'state').startswith('connected')


def send(browser, text):
    from selenium.webdriver.common.by import By
    browser.find_element(By.ID, 'text').send_keys(text)
    browser.find_element(By.ID, 'send').click()


def test_chat_across_servers_in_real_browsers(chat_servers, request):
    from selenium.webdriver.common.by import By
    labels = [f'{socket.gethostname()}:{port}' for port in chat_servers]
    urls = [f'http://127.0.0.1:{port}/' for port in chat_servers]
    alice, bob = _browser(), _browser()
    try:
        join_as(alice, urls[0], 'Alice')
        join_as(bob, urls[1], 'Bob')
        assert text_of(alice, 'me-name') == 'Alice'
        assert text_of(alice, 'me-server') == labels[0]
        assert alice.execute_script(
            'return localStorage.getItem("chat-name")') == 'Alice'
        assert not alice.find_element(By.ID, 'recovered').is_displayed()

        # the name is kept: a reload does not ask again
        bob.refresh()
        wait_until(lambda: bob.execute_script('return socket.connected'),
                   15, 'Bob connected again')
        assert not bob.find_element(By.ID, 'name').is_displayed()
        assert text_of(bob, 'me-name') == 'Bob'

        # who is online: pushed to every page, across servers
        for browser in (alice, bob):
            wait_text(browser, 'online', 'Alice', 'Bob', *labels)
            wait_text(browser, 'online-count', '2')

        # a message through the first server, with its label, on both
        send(alice, 'Hello Bob, this is Alice on the first server')
        wait_text(bob, 'messages', 'Hello Bob, this is Alice')
        said = bob.execute_script(
            'return [...document.querySelectorAll(".message")].map('
            '(m) => m.querySelector(".meta").textContent)')
        assert said[-1].startswith(f'Alice via {labels[0]}'), said
        send(bob, 'Hi Alice! Bob here, through the second one')
        wait_text(alice, 'messages', 'Bob here', labels[1])

        # /who: fetch_sockets over every server
        send(bob, '/who')
        wait_text(bob, 'messages', '/who: 2 online',
                  f'Alice on {labels[0]}', f'Bob on {labels[1]}')
        # /ping: server_side_emit, answered by the other server
        send(alice, '/ping')
        wait_text(alice, 'messages',
                  f'/ping from {labels[0]}: 1 other server(s) answered',
                  f'pong from {labels[1]}')

        # the cluster panel
        wait_text(alice, 'servers', '2')
        wait_text(alice, 'sockets', f'{labels[0]} 1', f'{labels[1]} 1')
        assert int(text_of(alice, 'delivered')) > 0

        # a lost connection comes back with what it missed
        alice.execute_script('socket.io.reconnection(false); '
                             'socket.io.engine.close()')
        wait_text(alice, 'state', 'disconnected')
        wait_until(lambda: 'Alice' not in text_of(bob, 'online'), 15,
                   'Alice gone from the list')
        send(bob, 'Sent while Alice was away')
        wait_text(bob, 'messages', 'Sent while Alice was away')
        assert 'Sent while Alice was away' not in text_of(alice, 'messages')
        alice.execute_script('socket.io.reconnection(true); '
                             'socket.connect()')
        wait_text(alice, 'messages', 'Sent while Alice was away',
                  'Reconnected: session recovered')
        assert alice.execute_script('return socket.recovered')
        assert text_of(alice, 'recovered') == 'session recovered'
        assert not bob.find_element(By.ID, 'recovered').is_displayed()
        wait_text(bob, 'online', 'Alice', 'Bob')

        if request.node.callspec.id == 'flask':  # the README's pictures
            os.makedirs(SCREENSHOTS, exist_ok=True)
            alice.save_screenshot(os.path.join(SCREENSHOTS,
                                               'chat-alice.png'))
            bob.save_screenshot(os.path.join(SCREENSHOTS, 'chat-bob.png'))

        # the page's own button: drop, reconnect by itself, recover
        bob.find_element(By.ID, 'drop').click()
        wait_until(lambda: bob.find_element(
            By.ID, 'recovered').is_displayed(), 15, 'Bob recovered')
        wait_until(lambda: connected(bob), 15, 'Bob\'s badge')
        wait_text(bob, 'messages', 'Disconnected (forced close)',
                  'Reconnected: session recovered')
    finally:
        alice.quit()
        bob.quit()
