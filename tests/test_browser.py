"""A message typed in one browser appears in another on another server."""
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from .nodes import wait_until
from .servers import free_port

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
DRIVER = shutil.which('chromedriver')
EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'examples')

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER) and not os.environ.get('CI'),
    reason='needs Debian chromium and chromium-driver (CI installs them)')


@pytest.fixture
def chat_servers(redis_server):
    ports = [free_port(), free_port()]
    procs = [subprocess.Popen(
        [sys.executable, os.path.join(EXAMPLES, 'chat.py'), str(port)],
        env={**os.environ, 'REDIS_URL': redis_server.url,
             'SIO_ASYNC_MODE': ''},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for port in ports]
    for port in ports:
        wait_until(lambda p=port: _listening(p), 15, f'chat on {port}')
    yield [f'http://127.0.0.1:{port}/' for port in ports]
    for proc in procs:
        proc.terminate()
        proc.wait(10)


def _listening(port):
    try:
        socket.create_connection(('127.0.0.1', port), 0.2).close()
        return True
    except OSError:
        return False


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ('--headless=new', '--no-sandbox', '--disable-gpu',
                 '--disable-quic', '--no-first-run',
                 '--disable-background-networking',
                 '--disable-component-update', '--disable-sync',
                 '--disable-dev-shm-usage'):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


def test_chat_crosses_servers_in_real_browsers(chat_servers):
    from selenium.webdriver.common.by import By
    first, second = _browser(), _browser()
    try:
        first.get(chat_servers[0])
        second.get(chat_servers[1])
        for browser in (first, second):
            wait_until(lambda b=browser: b.execute_script(
                'return typeof socket !== "undefined" && socket.connected'),
                15, 'socket connected')
        text = f'hello across servers {time.time()}'
        first.find_element(By.ID, 'text').send_keys(text)
        first.find_element(By.TAG_NAME, 'button').click()
        wait_until(lambda: text in second.find_element(
            By.ID, 'messages').text, 15, 'message in the other browser')
        assert text in first.find_element(By.ID, 'messages').text
    finally:
        first.quit()
        second.quit()
